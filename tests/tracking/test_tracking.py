"""MLflow tracking against a real SQLite store in a temporary directory.

In-process tests share one store per module (creating a SQLite store runs MLflow's schema
migrations, ~4 s); the two subprocess tests use the CLI's default store in their own cwd.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from pinnlab.config import flatten, load_config  # noqa: E402
from pinnlab.core.errors import PinnlabError, StoreError  # noqa: E402
from pinnlab.tracking import (  # noqa: E402
    RunTracker,
    artifact_root_for,
    default_store,
    default_tracking_uri,
    end_run,
    resolve_tracking_uri,
    set_tags,
    start_parent_run,
    ui_command,
)
from pinnlab.training import Callback, StopTraining, Trainer  # noqa: E402

TINY_POISSON = [
    "problem.params.n_residual=200",
    "problem.params.n_boundary=40",
    "training.steps=30",
    "diagnostics.every=10",
]
# the largest allowed step on a residual weighted by the largest allowed weight: the first update overflows
NAN_AT_STEP_0 = ["optimizer.learning_rate=1e19", "loss.weights.residual=1e19", "training.epochs=1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{(tmp_path_factory.mktemp('store') / 'mlflow.db').as_posix()}"


@pytest.fixture(scope="module")
def client(store):
    return mlflow.MlflowClient(tracking_uri=store)


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def _assert_all_metrics_finite(client, run_id: str) -> None:
    for key in client.get_run(run_id).data.metrics:
        values = [m.value for m in client.get_metric_history(run_id, key)]
        assert values and all(math.isfinite(v) for v in values), (key, values)


def _track(store, cfg, *callbacks, **kwargs):
    tracker = RunTracker(cfg, tracking_uri=store, experiment="tests", **kwargs)
    with tracker:
        result = Trainer(cfg, callbacks=[*callbacks, tracker]).fit()
    return tracker, result


class _RaiseAt(Callback):
    def __init__(self, step: int, exc: BaseException):
        self.step, self.exc = step, exc

    def on_step(self, step, metrics):
        if step == self.step:
            raise self.exc


# ------------------------------------------------------------------------------ where runs go
def test_default_store_and_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PINNLAB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_store() == tmp_path.resolve() / "pinnlab-runs"
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/pinnlab-runs/mlflow.db"
    assert artifact_root_for(resolve_tracking_uri()) == str(tmp_path.resolve() / "pinnlab-runs" / "artifacts")

    monkeypatch.setenv("PINNLAB_HOME", str(tmp_path / "home"))
    assert default_tracking_uri() == f"sqlite:///{(tmp_path / 'home').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert resolve_tracking_uri() == "sqlite:////elsewhere/m.db"
    assert resolve_tracking_uri("http://localhost:5000") == "http://localhost:5000"
    assert artifact_root_for("http://localhost:5000") is None
    assert ui_command("http://localhost:5000") == "open http://localhost:5000"
    assert ui_command("sqlite:////a/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////a/mlflow.db"


# ------------------------------------------------------------------------------ stores that fail
# (an unreachable server is left out: MLflow retries it for minutes)
@pytest.mark.parametrize(
    "make_uri, problem",
    [
        (lambda tmp: "nosuch://x", "cannot open it (Model registry functionality is unavailable"),
        (lambda tmp: f"sqlite:///{tmp / 'a-file' / 'sub' / 'mlflow.db'}", "cannot open it ([Errno 20] Not a directory"),
        (
            lambda tmp: f"sqlite:///{tmp / 'not-a-db.db'}",
            "cannot open it ((sqlite3.DatabaseError) file is not a database",
        ),
    ],
    ids=["bad-scheme", "directory-cannot-be-created", "not-a-database"],
)
def test_unusable_store_is_a_one_line_store_error_naming_store_uri_and_fix(tmp_path, make_uri, problem):
    (tmp_path / "a-file").write_text("a file where a directory should be")
    (tmp_path / "not-a-db.db").write_text("not a database\n" * 100)
    uri = make_uri(tmp_path)
    cfg = load_config("poisson2d", TINY_POISSON)
    tracker = RunTracker(cfg, tracking_uri=uri)
    with pytest.raises(StoreError) as info:
        with tracker:
            pass
    err = info.value
    assert isinstance(err, PinnlabError) and not isinstance(err, ValueError)
    assert (err.store, err.uri) == ("MLflow tracking store", uri)
    assert str(err).startswith(f"MLflow tracking store {uri!r}: {problem}"), str(err)
    assert "; give a tracking URI whose directory can be created" in str(err) and "\n" not in str(err)
    assert tracker.run_id is None


def test_store_error_says_where_the_uri_came_from(tmp_path, monkeypatch):
    from pinnlab.tracking import start_parent_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuch://env")
    with pytest.raises(StoreError, match=r"^MLflow tracking store \(from \$MLFLOW_TRACKING_URI\) 'nosuch://env': "):
        start_parent_run(None, "x")


def test_reading_a_missing_store_creates_nothing(tmp_path):
    from pinnlab.tracking import check_parent_run, child_runs

    uri = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(StoreError, match=r"no MLflow store at .*; give the tracking URI the sweep used$"):
        child_runs(uri, "0" * 32)
    with pytest.raises(StoreError, match="no MLflow store at"):
        check_parent_run(uri, "0" * 32)
    assert not (tmp_path / "none.db").exists()


def test_unknown_parent_run_is_a_store_error(store):
    from pinnlab.tracking import child_runs

    end_run(store, start_parent_run(store, "tests-unknown"), "FINISHED")  # the store exists

    with pytest.raises(StoreError, match=r"run '0{32}' \(the study's parent run\) is not in this store"):
        child_runs(store, "0" * 32)


def test_store_error_hides_the_password():
    err = StoreError(StoreError.OPTUNA, "postgresql://me:secret@db.example:5432/studies", "cannot open it", "retry")
    assert str(err) == "Optuna storage 'postgresql://me:***@db.example:5432/studies': cannot open it; retry"
    assert "secret" not in err.uri


def test_cli_prints_a_store_error_as_one_line_with_exit_2(tmp_path, capsys):
    from pinnlab.cli import main

    (tmp_path / "a-file").write_text("")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    assert (
        main(["run", "poisson2d", *[a for s in TINY_POISSON for a in ("--set", s)], "--quiet", "--tracking-uri", uri])
        == 2
    )
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"pinnlab run: error: MLflow tracking store {uri!r}: cannot create"), err


# ------------------------------------------------------------------------------ a stable run
def test_stable_run_params_tags_metrics_artifacts(store, client):
    cfg = load_config("poisson2d", TINY_POISSON)
    tracker, result = _track(store, cfg, tags={"study": "unit", "trial": 3}, run_name="tiny")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"t3 {result.outcome}"  # a trial's run: its number and outcome (run_label)

    flat = flatten(cfg.to_dict())
    assert set(run.data.params) == set(flat)
    assert run.data.params["model.width"] == "50"
    assert run.data.params["training.steps"] == "30"
    assert run.data.params["training.deterministic"] == "true"
    assert run.data.params["training.epochs"] == "null"

    tags = run.data.tags
    assert tags["problem"] == "poisson2d"
    assert (tags["study"], tags["trial"]) == ("unit", "3")
    assert tags["outcome"] == result.outcome
    assert tags["nan_onset_step"] == tags["first_nonfinite"] == tags["divergence_step"] == tags["stopped_by"] == "none"
    assert tags["diverged"] == "false"
    assert tags["warnings"] == "\n".join(result.warnings)

    # per-step metrics every metric_every-th step and the last; diagnostics rows every diagnostics.every
    steps = [m.step for m in client.get_metric_history(tracker.run_id, "loss/total")]
    assert tracker.metric_every > 1 and steps == sorted({*range(0, 30, tracker.metric_every), 29})
    hist = client.get_metric_history(tracker.run_id, "loss/total")
    for m in hist:
        assert m.value == pytest.approx(result.history.loc[m.step, "loss/total"])
    for key in ("grad_norm/residual", "weight_norm/dense_1/kernel", "deriv/u_xx", "update_ratio/dense_1/kernel"):
        assert [m.step for m in client.get_metric_history(tracker.run_id, key)] == [0, 10, 20], key
    metrics = run.data.metrics
    assert metrics["summary/final_loss"] == pytest.approx(result.final_loss)
    assert metrics["summary/steps_run"] == 30
    assert metrics["summary/rel_l2_error"] == pytest.approx(result.rel_l2_error)
    assert "summary/weight_norm_ratio" in metrics and "summary/wall_seconds" in metrics
    assert "summary/nan_onset_step" not in metrics
    _assert_all_metrics_finite(client, tracker.run_id)

    files = _artifacts(client, tracker.run_id)
    assert {"config.yaml", "history.csv", "plots/losses.png", "plots/weight_norms.png", "plots/grad_norms.png"} <= files
    local = Path(client.download_artifacts(tracker.run_id, "", dst_path=None))
    assert load_config(local / "config.yaml") == cfg
    import pandas as pd

    history = pd.read_csv(local / "history.csv", index_col="step")
    assert len(history) == 30 and "loss/total" in history.columns
    for png in local.glob("plots/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the embedded layout: artifacts next to the database
    db_dir = Path(store[len("sqlite:///") :]).parent
    assert run.info.artifact_uri == str(db_dir / "artifacts" / tracker.run_id / "artifacts")


# ------------------------------------------------------------------------------ divergence and errors
def test_diverged_run_is_finished_with_nan_tags_and_only_finite_metrics(store, client):
    cfg = load_config("seed", NAN_AT_STEP_0)
    tracker, result = _track(store, cfg)
    assert result.outcome == "nan" and result.nan_onset_step == 0
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["outcome"] == "nan"
    assert tags["nan_onset_step"] == "0"
    assert tags["first_nonfinite"] == result.first_nonfinite != "none"
    assert tags["diverged"] == "true"
    assert tags["problem"] == "seed"
    assert "first non-finite value at step 0" in tags["reason"]
    assert run.data.metrics["summary/nan_onset_step"] == 0
    # the NaN row was never seen by on_step: its finite values are logged at the end
    finite = [c for c, v in result.history.iloc[0].items() if math.isfinite(v)]
    assert finite and all(c in run.data.metrics for c in finite)
    assert not [c for c, v in result.history.iloc[0].items() if not math.isfinite(v) and c in run.data.metrics]
    _assert_all_metrics_finite(client, tracker.run_id)
    assert {"config.yaml", "history.csv", "plots/losses.png"} <= _artifacts(client, tracker.run_id)


class _PruneAt(Callback):
    def on_diagnostics(self, step, metrics):
        if step == 10:
            raise StopTraining("pruned at step 10")


def test_run_stopped_by_a_callback_is_finished_with_its_last_row(store, client):
    cfg = load_config("poisson2d", TINY_POISSON)
    tracker, result = _track(store, cfg, _PruneAt())  # the pruner runs first: the tracker never sees step 10
    assert result.stopped_by == "pruned at step 10" and result.steps_run == 11
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["stopped_by"] == "pruned at step 10"
    assert [m.step for m in client.get_metric_history(tracker.run_id, "loss/total")] == [0, 10]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "grad_norm/residual")] == [0, 10]


def test_exception_in_training_marks_the_run_failed(store, client):
    cfg = load_config("poisson2d", TINY_POISSON)
    tracker = RunTracker(cfg, tracking_uri=store, experiment="tests", metric_every=5)
    with pytest.raises(RuntimeError, match="boom"):
        with tracker:
            Trainer(cfg, callbacks=[tracker, _RaiseAt(12, RuntimeError("boom\nsecond line"))]).fit()
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: boom"
    assert "outcome" not in run.data.tags
    # what was buffered before the failure is kept
    assert [m.step for m in client.get_metric_history(tracker.run_id, "loss/total")] == [0, 5, 10]


def test_keyboard_interrupt_marks_the_run_killed(store, client):
    cfg = load_config("poisson2d", TINY_POISSON)
    tracker = RunTracker(cfg, tracking_uri=store, experiment="tests")
    with pytest.raises(KeyboardInterrupt):
        with tracker:
            Trainer(cfg, callbacks=[_RaiseAt(5, KeyboardInterrupt()), tracker]).fit()
    assert client.get_run(tracker.run_id).info.status == "KILLED"


# ------------------------------------------------------------------------------ limits, no training
class _Trainerish:
    step_names = ["loss/total", "weight_norm/total"]


def test_batches_respect_mlflow_limits_and_non_finite_values_are_skipped(store, client):
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    cfg = load_config("poisson2d", TINY_POISSON)
    many = {f"factor{i}": i for i in range(150)}  # > 100 tags per batch
    tracker = RunTracker(
        cfg, tracking_uri=store, experiment="tests", tags={**many, "long": "x" * 10_000}, metric_every=1
    )
    with tracker:
        tracker.on_train_begin(_Trainerish())
        for step in range(2600):  # > 1000 metrics per batch, and more than flush_every in total
            bad = step % 7 == 0
            tracker.on_step(step, {"loss/total": math.nan if bad else float(step), "weight_norm/total": math.inf})
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert all(run.data.tags[k] == str(v) for k, v in many.items())
    assert run.data.tags["long"] == "x" * MAX_TAG_VAL_LENGTH
    hist = client.get_metric_history(tracker.run_id, "loss/total")
    assert [m.step for m in hist] == [s for s in range(2600) if s % 7]
    assert "weight_norm/total" not in run.data.metrics


# ------------------------------------------------------------------------------ sweep helpers
def test_parent_and_child_runs(store, client):
    parent = start_parent_run(store, "tests-sweep", "study-a", tags={"study": "a"}, params={"n_trials": 2})
    cfg = load_config("poisson2d", TINY_POISSON)
    with RunTracker(cfg, tracking_uri=store, experiment="tests-sweep", parent_run_id=parent, tags={"trial": 0}) as t:
        pass  # a trial that never trained (e.g. pruned before its first step)
    set_tags(store, parent, {"best_trial": 0, "best_value": None})
    end_run(store, parent, "FINISHED")
    p = client.get_run(parent)
    assert p.info.status == "FINISHED" and p.info.run_name == "study-a"
    assert p.data.params == {"n_trials": "2"}
    assert (p.data.tags["study"], p.data.tags["best_trial"], p.data.tags["best_value"]) == ("a", "0", "none")
    child = client.get_run(t.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.info.experiment_id == p.info.experiment_id
    with pytest.raises(ValueError, match="`status` must be one of FINISHED, FAILED, KILLED, but got 'DONE'"):
        end_run(store, parent, "DONE")


# ------------------------------------------------------------------------------ the CLI
def _env_without_tracking() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PINNLAB_HOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_cli_tracks_into_the_working_directory(tmp_path):
    sets = [a for s in TINY_POISSON for a in ("--set", s)]
    proc = subprocess.run(
        [sys.executable, "-m", "pinnlab", "run", "poisson2d", *sets, "--json", "--quiet"],
        cwd=tmp_path,
        env=_env_without_tracking(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # exactly one JSON object on stdout
    db = tmp_path / "pinnlab-runs" / "mlflow.db"
    assert db.is_file() and (tmp_path / "pinnlab-runs" / "artifacts").is_dir()
    run_id = summary["mlflow_run_id"]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"tracked: run {run_id} in sqlite:///{db.resolve()}"), line
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db.resolve()}").get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == summary["outcome"]
    assert run.data.tags["config"] == "poisson2d"
    assert run.data.params["problem.params.n_residual"] == "200"


def _runs(db: Path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT run_uuid, status FROM runs").fetchall()
    except sqlite3.Error:  # not created yet, or MLflow is still migrating the schema
        return []


def test_sigterm_marks_the_run_killed(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinnlab", "run", "seed-fixed", "--quiet"],
        cwd=tmp_path,
        env=_env_without_tracking(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "pinnlab-runs" / "mlflow.db"
    try:
        deadline = time.monotonic() + 120
        while not _runs(db):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run never appeared in the store"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "interrupted" in err
    ((run_id, status),) = _runs(db)
    assert status == "KILLED", err[-3000:]
