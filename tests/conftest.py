"""Shared fixtures.  Trainings in tests are tiny; full-size ones are marked ``slow``."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def tiny():
    """Overrides that make any preset train for a handful of steps."""
    return ["training.steps=20", "diagnostics.every=5"]


@pytest.fixture(autouse=True)
def _store_in_tmp(tmp_path, monkeypatch):
    """Runs tracked by default (CLI, README commands) write their store into the test's tmp dir,
    never into the checkout."""
    monkeypatch.setenv("PINNLAB_HOME", str(tmp_path / "pinnlab-runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
