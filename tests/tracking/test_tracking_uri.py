"""The URL helpers of pinnlab.tracking.uri (no MLflow): SQLite and journal paths, artifact roots,
passwords hidden, and that the package imports mlflow only on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pinnlab.tracking.uri import (
    artifact_root_for,
    default_storage_url,
    display_url,
    journal_path,
    local_path,
    sqlite_path,
)


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:///mlflow.db", Path("mlflow.db")),  # relative to the working directory
        ("sqlite:///runs/m.db?timeout=20", Path("runs/m.db")),
        ("sqlite:////abs/dir/m.db", Path("/abs/dir/m.db")),
        ("sqlite:////abs/dir/m.db?mode=ro", Path("/abs/dir/m.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://u:p@host/db", None),
        ("journal:/x/optuna.journal", None),
    ],
)
def test_sqlite_path(url, path):
    assert sqlite_path(url) == path


def test_artifact_root_is_next_to_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert artifact_root_for("sqlite:///sub/m.db") == str(tmp_path.resolve() / "sub" / "artifacts")
    assert artifact_root_for("sqlite:////abs/m.db") == "/abs/artifacts"
    assert artifact_root_for("sqlite:///:memory:") is None
    assert artifact_root_for("https://mlflow.example") is None


@pytest.mark.parametrize(
    "url, path",
    [
        ("journal:/abs/optuna.journal", "/abs/optuna.journal"),
        ("journal:rel/any-name", "rel/any-name"),
        ("rel/study.journal", "rel/study.journal"),
        ("/abs/study.log", "/abs/study.log"),
        ("sqlite:///study.journal", None),
        ("postgresql://host/db", None),
        ("study.db", None),
    ],
)
def test_journal_path(url, path):
    assert journal_path(url) == path


def test_default_storage_url_is_a_journal_in_the_store():
    url = default_storage_url(Path("/s"))
    assert url == "journal:/s/optuna.journal" and journal_path(url) == "/s/optuna.journal"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://me:secret@db:5432/x", "postgresql://me:***@db:5432/x"),
        ("postgresql+psycopg://me:s%40cret@db/x", "postgresql+psycopg://me:***@db/x"),
        ("http://me:secret@mlflow.example/", "http://me:***@mlflow.example/"),
        ("postgresql://me@db/x", "postgresql://me@db/x"),
        ("sqlite:////abs/m.db", "sqlite:////abs/m.db"),
        ("journal:/a@b/optuna.journal", "journal:/a@b/optuna.journal"),
    ],
)
def test_display_url_hides_passwords(url, shown):
    assert display_url(url) == shown


def test_local_path_of_artifact_uris():
    assert local_path("/abs/artifacts") == Path("/abs/artifacts")
    assert local_path("file:///abs/with%20space") == Path("/abs/with space")
    assert local_path("s3://bucket/x") is None


def test_importing_the_package_uri_and_analysis_does_not_import_mlflow():
    code = (
        "import sys, pinnlab.tracking, pinnlab.tracking.uri, pinnlab.analysis, pinnlab.sweep.study\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
        "from pinnlab.tracking import RunTracker, child_runs\n"
        "assert 'mlflow' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
