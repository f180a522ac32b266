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


# The test modules that take longest (seconds of work, `--durations=0`), longest first: the two test
# processes (`--dist loadscope`: one module at a time, in collection order) start with them, so the
# short modules fill the end and both processes finish together instead of one waiting on the other.
LONGEST_FIRST = [
    "test_readme.py",
    "test_quiet.py",
    "test_sweep.py",
    "test_scaleout.py",
    "test_ntk.py",
    "test_journal_faults.py",
    "test_dashboard_browser.py",
    "test_trainer.py",
    "test_dashboard_injection.py",
    "test_signal_faults.py",
    "test_replicas.py",
    "test_mlflow_ui.py",
    "test_tracking.py",
    "test_sweep_faults.py",
    "test_store_guards.py",
    "test_bad_input_generated.py",
]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))  # stable: order kept within
