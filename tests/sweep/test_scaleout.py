"""Scale-out and faults with real servers and real processes: a study on PostgreSQL, ``pinnlab
worker`` processes logging to an ``mlflow server`` on 127.0.0.1, workers killed with SIGKILL and
stopped with SIGTERM in the middle of a trial, a killed worker on the journal storage repaired with
``pinnlab sweep --repair``, and the one-line errors of ``pinnlab worker``.

PostgreSQL comes from ``tests/postgres.py`` (``$PINNLAB_TEST_POSTGRES_URL``, set by ``.ci/run``, or
a temporary cluster from the local binaries; skipped without one unless
``PINNLAB_REQUIRE_POSTGRES=1``).  The MLflow server is started here, with the helper of
``tests/dashboards/test_dashboard_browser.py``.  Heartbeats every second with a grace period of 3 s
(``PINNLAB_HEARTBEAT_INTERVAL`` / ``PINNLAB_GRACE_PERIOD``), so a killed worker is noticed in
seconds.  Trials are trainings of 300 steps (a few seconds each, tracking included): long enough
to be killed in the middle, short enough for the file to run in about a minute and a half.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
import yaml

from pinnlab.analysis import trials_frame
from pinnlab.cli import main
from tests import postgres
from tests.dashboards.test_dashboard_browser import BIN, Server, free_port

HEARTBEAT = {"PINNLAB_HEARTBEAT_INTERVAL": "1", "PINNLAB_GRACE_PERIOD": "3"}
GRID = {"model.width": [8, 16], "model.activation": ["tanh", "softplus"]}
SWEEP = {
    "base": "seed-fixed",
    "overrides": {"training.steps": 300, "diagnostics.every": 100, "divergence.heldout_points": 256},
    "space": {k: {"choices": v} for k, v in GRID.items()},
    "objective": {"metric": "final_loss", "direction": "minimize"},
    "sampler": {"name": "grid"},
    "n_trials": 4,
}
HOST = socket.gethostname()
ROOT = Path(__file__).resolve().parents[2]
CLOSED = "pinnlab.closed_by"


@pytest.fixture(scope="module")
def pg_url():
    with postgres.or_skip(), postgres.postgres_url() as url:
        yield url


def documented_mlflow_server() -> list[str]:
    """The ``mlflow server`` command of docs/scale-out.md, as an argv."""
    (line,) = [
        ln[2:] for ln in (ROOT / "docs" / "scale-out.md").read_text().splitlines() if ln.startswith("$ mlflow server ")
    ]
    return shlex.split(line)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """The documented ``mlflow server`` command, run in a scratch directory on a free port of
    127.0.0.1 with one worker process."""
    root = tmp_path_factory.mktemp("mlflow-server")
    argv = documented_mlflow_server()
    assert argv[argv.index("--host") + 1] == "127.0.0.1"  # the documented default stays on loopback
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    server = Server([str(BIN / "mlflow"), *argv[1:], "--workers", "1"], root, port)
    try:
        server.answer("/api/2.0/mlflow/experiments/search", {"max_results": 1})
        yield f"http://127.0.0.1:{port}"
    finally:
        # a throwaway store: no graceful stop (uvicorn waits ~20 s for the test's keep-alive connections)
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()


@pytest.fixture
def heartbeat(monkeypatch):
    for k, v in HEARTBEAT.items():
        monkeypatch.setenv(k, v)


def sweep_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, **changes}))
    return path


def cli_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def worker(study: str, storage: str, tmp_path: Path, name: str, *extra: str) -> subprocess.Popen:
    """``pinnlab worker`` in its own process; stderr goes to ``<tmp>/<name>.err``."""
    env = {**os.environ, **HEARTBEAT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    err = open(tmp_path / f"{name}.err", "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pinnlab",
            "worker",
            "--study-name",
            study,
            "--storage",
            storage,
            "--threads",
            "1",
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )


def err_of(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.err").read_text()


def trials(study: str, storage) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def wait_for(predicate, what: str, procs=(), timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for p in procs:
            assert p.poll() is None, f"{what}: a worker exited with {p.returncode} first"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def running_trial_of(study: str, storage, proc: subprocess.Popen):
    """The RUNNING trial of worker process ``proc`` once its MLflow run exists, else None."""
    for t in trials(study, storage):
        if (
            t.state.name == "RUNNING"
            and t.user_attrs.get("worker") == f"{HOST}:{proc.pid}"
            and t.user_attrs.get("mlflow_run_id")
        ):
            return t
    return None


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def grid_points(ts) -> list[tuple]:
    return sorted(tuple(t.params[k] for k in GRID) for t in ts)


# ------------------------------------------------------------------------------ SIGKILL on PostgreSQL
def test_sigkilled_worker_loses_nothing(tmp_path, capsys, heartbeat, pg_url, tracking):
    study = f"scale-{uuid.uuid4().hex[:8]}"
    created = cli_json(
        capsys,
        "sweep",
        str(sweep_file(tmp_path)),
        "--study-name",
        study,
        "--storage",
        pg_url,
        "--tracking-uri",
        tracking,
        "--workers",
        "0",
        "--json",
        "--quiet",
    )
    assert created["counts"] == {"WAITING": 4} and created["parent_run_id"]
    storage = optuna.storages.RDBStorage(pg_url, skip_table_creation=True)
    a = worker(study, pg_url, tmp_path, "a")
    b = worker(study, pg_url, tmp_path, "b")  # takes the study's tracking URI from the storage
    try:
        victim = wait_for(lambda: running_trial_of(study, storage, a), "worker a to be in a trial", [a, b])
        a.send_signal(signal.SIGKILL)
        a.wait(30)
        out = finish(b)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert b.returncode == 0, err_of(tmp_path, "b")[-3000:]
    assert "4/4 trials" in out, out

    ts = trials(study, storage)
    by_number = {t.number: t for t in ts}
    killed = by_number[victim.number]
    assert killed.state.name == "FAIL"  # not RUNNING: b's heartbeat check failed it
    states = Counter(t.state.name for t in ts)
    assert states["FAIL"] == 1 and states["RUNNING"] == states["WAITING"] == 0, states
    results = [t for t in ts if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(results) == 4
    # no finished trial lost or duplicated: each grid point, and each budget slot, exactly once
    expected = sorted((w, act) for w in GRID["model.width"] for act in GRID["model.activation"])
    assert grid_points(results) == expected
    assert sorted(t.user_attrs["budget_slot"] for t in results) == list(range(4))
    (retry,) = [t for t in results if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params and retry.user_attrs["budget_slot"] == killed.user_attrs["budget_slot"]
    assert retry.user_attrs["retry_reason"].startswith(f"heartbeat: worker {HOST}:{a.pid} stopped beating")

    client = mlflow.MlflowClient(tracking_uri=tracking)
    dead_run = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "KILLED"
    assert dead_run.data.tags[CLOSED].startswith(f"heartbeat: worker {HOST}:{a.pid} stopped beating")
    parent = client.get_run(created["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=100
    )
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in ts}
    # pinnlab's analysis tells the retried trial from a crash, and judges the four results only
    frame = trials_frame(study, pg_url, tracking).set_index("trial")
    assert frame.loc[killed.number, "outcome"] == "retried" and frame["diverged"].notna().sum() == 4
    # the filter of docs/scale-out.md finds the killed run, and only it
    closed = client.search_runs([parent.info.experiment_id], "tags.pinnlab.closed_by LIKE '%'")
    assert [r.info.run_id for r in closed] == [dead_run.info.run_id]
    assert not [r.info.run_id for r in children if r.info.status == "RUNNING"]
    for t in results:
        run = next(r for r in children if r.info.run_id == t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["trial"] == str(t.number)


# ------------------------------------------------------------------------------ the README's commands, SIGTERM
def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- scale-out -->\s*```console\n(.*?)```", text, re.S).group(1)
    return [ln[2:].split("  #")[0].strip() for ln in block.splitlines() if ln.startswith("$ ")]


def test_readme_commands_and_a_worker_stopped_with_sigterm(tmp_path, capsys, heartbeat, pg_url, tracking, monkeypatch):
    """The README's scale-out commands as written, with STORAGE and TRACKING pointing at this
    test's servers: the first creates the study and runs nothing; the worker is stopped with
    SIGTERM in the middle of its first trial (MLflow run KILLED, trial FAIL and queued again, exit
    code 130 and one line saying so); the repair then finds nothing left to repair."""
    create, work, repair = readme_commands()
    monkeypatch.setenv("STORAGE", pg_url)
    monkeypatch.setenv("TRACKING", tracking)
    monkeypatch.chdir(ROOT)
    try:  # a study left by an earlier run against the same database
        optuna.delete_study(study_name="seed_divergence", storage=pg_url)
    except KeyError:
        pass

    def in_process(cmd: str) -> list[str]:
        argv = shlex.split(os.path.expandvars(cmd))
        assert argv[0] == "pinnlab" and main(argv[1:]) == 0, capsys.readouterr().err
        return capsys.readouterr().out.splitlines()

    out = in_process(create)
    assert out[0] == "study seed_divergence: 0/24 trials (WAITING 24); ran 0 now", out
    assert f"run workers with: pinnlab worker --study-name seed_divergence --storage {pg_url}" in out

    storage = optuna.storages.RDBStorage(pg_url, skip_table_creation=True)
    argv = shlex.split(os.path.expandvars(work))
    assert argv[:2] == ["pinnlab", "worker"]
    w = subprocess.Popen(
        [str(BIN / "pinnlab"), *argv[1:]],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "w.err", "w"),
        text=True,
        # the stop at a safe point (a step that outlasts the grace is test_signal_faults')
        env={**os.environ, **HEARTBEAT, "TF_CPP_MIN_LOG_LEVEL": "2", "PINNLAB_STOP_GRACE": "120"},
    )
    try:
        victim = wait_for(lambda: running_trial_of("seed_divergence", storage, w), "the worker to be in a trial", [w])
        w.send_signal(signal.SIGTERM)
        finish(w, 60)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    err = err_of(tmp_path, "w").strip().splitlines()
    assert w.returncode == 130, err[-20:]
    assert err[-1] == (
        f"pinnlab worker: interrupted by SIGTERM: trial {victim.number} ended FAIL and its MLflow run KILLED, "
        "its slot queued again; this worker finished 0"
    )
    ts = {t.number: t for t in trials("seed_divergence", storage)}
    assert ts[victim.number].state.name == "FAIL"
    run = mlflow.MlflowClient(tracking_uri=tracking).get_run(victim.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert run.data.tags[CLOSED] == f"SIGTERM: worker {HOST}:{w.pid} was stopped during the trial"
    (retry,) = [t for t in ts.values() if t.user_attrs.get("retry_of") == victim.number]
    assert retry.state.name == "WAITING" and retry.params == victim.params
    assert retry.user_attrs["budget_slot"] == victim.user_attrs["budget_slot"]

    out = in_process(repair)
    assert out[0] == "repaired: 0 trials marked FAIL, 0 other MLflow runs closed KILLED"
    assert out[1] == "study seed_divergence: 0/24 trials (FAIL 1, WAITING 24); ran 0 now", out


# ------------------------------------------------------------------------------ journal: --repair
def test_killed_workers_on_the_journal_storage(tmp_path, capsys):
    """The journal has no heartbeat.  A ``pinnlab sweep --workers 2`` repairs the trial of its own
    worker process that is SIGKILLed (the other worker redoes the slot); when the whole sweep is
    SIGKILLed, its last trial stays RUNNING until ``pinnlab sweep --repair``, which fails it, closes
    its MLflow run and resumes the sweep."""
    # trials long enough that the SIGKILL lands inside one, not between its run's end and its tell
    path = sweep_file(tmp_path, n_trials=3, overrides={**SWEEP["overrides"], "training.steps": 1500})
    journal, db = f"journal:{tmp_path / 'optuna.journal'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--storage", journal, "--tracking-uri", db, "--quiet"]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    sweep = subprocess.Popen(
        [sys.executable, "-m", "pinnlab", "sweep", str(path), "--workers", "2", *common],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "sweep.err", "w"),
    )

    def running(exclude=()):
        try:
            ts = trials("scale", storage)
        except KeyError:  # the sweep has not created the study yet
            return None
        return next(
            (
                t
                for t in ts
                if t.state.name == "RUNNING"
                and t.user_attrs.get("mlflow_run_id")
                and t.user_attrs["worker"] not in exclude
            ),
            None,
        )

    try:
        first = wait_for(running, "a worker in a trial", [sweep])
        os.kill(int(first.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        client = mlflow.MlflowClient(tracking_uri=db)
        wait_for(
            lambda: (
                [t for t in trials("scale", storage) if t.user_attrs.get("retry_of") == first.number]
                and client.get_run(first.user_attrs["mlflow_run_id"]).info.status == "KILLED"
            ),
            "the sweep to repair its dead worker's trial",
            [sweep],
        )
        second = wait_for(lambda: running(exclude={first.user_attrs["worker"]}), "the other worker in a trial", [sweep])
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(30)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
    time.sleep(1)
    assert {t.number: t.state.name for t in trials("scale", storage)}[second.number] == "RUNNING"  # nobody can tell

    assert main(["sweep", str(path), "--repair", "--json", *common]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["done"] == 3 and report["counts"] == {"COMPLETE": 3, "FAIL": 2}
    ts = {t.number: t for t in trials("scale", storage)}
    assert ts[first.number].state.name == ts[second.number].state.name == "FAIL"
    complete = [t for t in ts.values() if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["budget_slot"] for t in complete) == [0, 1, 2]
    assert grid_points(complete) == sorted({grid_points([t])[0] for t in complete})  # no point twice
    for victim, reason in (
        (first, f"repair: worker process {first.user_attrs['worker']} died (exit seen by the sweep"),
        (second, f"repair: worker {second.user_attrs['worker']} is not running (pinnlab sweep --repair"),
    ):
        run = client.get_run(victim.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED" and run.data.tags[CLOSED].startswith(reason)
        (retry,) = [t for t in complete if t.user_attrs.get("retry_of") == victim.number]
        assert retry.params == victim.params
    parent = client.get_run(report["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 5 and not [r for r in children if r.info.status == "RUNNING"]


# ------------------------------------------------------------------------------ one-line errors
def one_line_error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("pinnlab worker: error: ")
    return err.strip()


def test_worker_errors_are_one_line_and_write_nothing(tmp_path, capsys, pg_url, monkeypatch):
    journal = tmp_path / "none.journal"
    err = one_line_error(capsys, "worker", "--study-name", "x", "--storage", f"journal:{journal}")
    assert f"Optuna storage 'journal:{journal}': no Optuna journal at '{journal}'" in err and not journal.exists()
    err = one_line_error(capsys, "worker", "--study-name", "x", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert (
        ": no SQLite database at" in err
        and err.startswith("pinnlab worker: error: Optuna storage 'sqlite:")
        and not (tmp_path / "none.db").exists()
    )

    closed = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/pinnlab"
    t0 = time.monotonic()
    err = one_line_error(capsys, "worker", "--study-name", "x", "--storage", closed)
    assert (
        "Optuna storage 'postgresql://postgres:***@127.0.0.1:" in err
        and "cannot open it" in err
        and "secret" not in err
    )
    assert "refused" in err.lower() and time.monotonic() - t0 < 15

    # a database without Optuna's tables stays without them
    engine = sqlalchemy.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    empty = f"empty_{uuid.uuid4().hex[:8]}"
    with engine.connect() as con:
        con.execute(sqlalchemy.text(f"CREATE DATABASE {empty}"))
    empty_url = pg_url.rsplit("/", 1)[0] + f"/{empty}"
    err = one_line_error(capsys, "worker", "--study-name", "x", "--storage", empty_url)
    assert err.startswith("pinnlab worker: error: Optuna storage 'postgresql://") and ": cannot" in err
    tables = sqlalchemy.inspect(sqlalchemy.create_engine(empty_url)).get_table_names()
    assert tables == []

    # a study that does not exist, in a storage that has others
    cli_json(
        capsys,
        "sweep",
        str(sweep_file(tmp_path)),
        "--storage",
        f"journal:{tmp_path / 'j.journal'}",
        "--no-track",
        "--workers",
        "0",
        "--json",
    )
    err = one_line_error(capsys, "worker", "--study-name", "nope", "--storage", f"journal:{tmp_path / 'j.journal'}")
    assert err.endswith(
        "--study-name: 'nope' is not a study in journal:" + str(tmp_path / "j.journal") + " (studies: scale)"
    )
    err = one_line_error(capsys, "worker", "--study-name", "scale", "--storage", "mysql://nobody@127.0.0.1/x")
    assert err.startswith("pinnlab worker: error: Optuna storage 'mysql://nobody@127.0.0.1/x': cannot open it")
    err = one_line_error(
        capsys, "worker", "--study-name", "scale", "--storage", f"journal:{tmp_path / 'j.journal'}", "--n-trials", "0"
    )
    assert err.endswith("--n-trials: 0 is not allowed: must be >= 1")
    monkeypatch.setenv("PINNLAB_GRACE_PERIOD", "soon")
    err = one_line_error(capsys, "worker", "--study-name", "scale", "--storage", pg_url)
    assert err.endswith("PINNLAB_GRACE_PERIOD: 'soon' is not allowed: must be a whole number of seconds >= 1")
