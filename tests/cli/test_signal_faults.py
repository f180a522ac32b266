"""SIGINT and SIGTERM at chosen moments of real ``pinnlab run`` and ``pinnlab sweep`` processes:
exit code 130, one line saying so, no traceback from any process, and no MLflow run or Optuna
trial left RUNNING, whatever the moment.

Each case starts the command in a subprocess through a small launcher that runs
:func:`pinnlab.cli.main` unchanged, except that it may pause once at a named moment (before a
named function runs, or when a module is first imported) and write a marker file: the test waits
for the marker (or for a line on stdout, or a RUNNING run in the MLflow database), then sends the
signal with ``os.kill`` (``os.killpg`` for a Ctrl-C, which a terminal sends to the whole
foreground process group).  ``PINNLAB_STOP_GRACE`` is short here, so the stop watchdog's cases
(a step that takes minutes; a second signal) end within seconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_bad_input import TF_NOISE

GRACE = 2  # PINNLAB_STOP_GRACE of every case
LIMIT = 240  # seconds a case may take to reach its moment (TensorFlow starts on a busy machine)

LAUNCHER = """
import functools, importlib, os, sys, time


def _pause():
    open(os.environ["PAUSE_FILE"], "w").close()
    time.sleep(float(os.environ["PAUSE_SECONDS"]))


def _patch(target):
    module, qualname = target.split(":")
    owner = importlib.import_module(module)
    *parents, name = qualname.split(".")
    for p in parents:
        owner = getattr(owner, p)
    original = getattr(owner, name)

    @functools.wraps(original)
    def paused(*args, **kwargs):
        setattr(owner, name, original)  # once
        _pause()
        return original(*args, **kwargs)

    setattr(owner, name, paused)


class _PauseAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["PAUSE_IMPORT"]:
            sys.meta_path.remove(self)
            _pause()
        return None


if __name__ == "__main__":  # spawned sweep workers import this module too, as __mp_main__
    if os.environ.get("PAUSE_AT"):
        _patch(os.environ["PAUSE_AT"])
    if os.environ.get("PAUSE_IMPORT"):
        sys.meta_path.insert(0, _PauseAtImport())
    from pinnlab.cli import main

    sys.exit(main())
"""

TINY_RUN = ["run", "seed-fixed", "--set", "training.steps=40", "--quiet"]
# one step of this takes minutes (width 1000, 15,000 points, second derivatives): a stop that waits
# for the next step would not come
SLOW_RUN = [
    "run",
    "poisson2d",
    "--set",
    "model.width=1000",
    "--set",
    "problem.params.n_residual=15000",
    "--set",
    "training.steps=3",
    "--set",
    "training.jit_compile=false",
]
SWEEP = """\
base: seed-fixed
overrides:
  training.steps: 1500
  diagnostics.every: 100
  divergence.heldout_points: 256
space:
  model.width: {low: 4, high: 8}
sampler: {name: random, seed: 0}
n_trials: 4
"""
SWEEP_RUN = ["sweep", "sigs.yaml", "--workers", "2", "--quiet"]
# one network shape, so a worker's batch of 4 trains as one stacked step (4 MLflow runs RUNNING at once)
BATCH_SWEEP = SWEEP.replace("  model.width: {low: 4, high: 8}", "  training.seed: {low: 0, high: 100}")
BATCH_RUN = ["sweep", "sigs-batch.yaml", "--workers", "1", "--batch", "4", "--quiet"]

# (id, argv, moment, signal, words of the stop line, MLflow statuses allowed at the end).
# moment: ("pause", "module:function") pauses before that function runs; ("import", "module") when
# that module is first imported; ("running", n): once n MLflow runs are RUNNING; ("slow", s): s
# seconds into the first step; ("twice", s): as "slow", then the signal again a second later.
# A signal name ending in "-group" is sent to the process group (a Ctrl-C in a terminal).
ENDED = {"FINISHED", "KILLED"}
CASES = [
    # the run's end: after training, while its metrics, status and artifacts are written
    (
        "run-end-flush-term",
        TINY_RUN,
        ("pause", "pinnlab.tracking.writer:RunTracker.flush"),
        "SIGTERM",
        ["interrupted by SIGTERM"],
        ENDED,
    ),
    (
        "run-end-status-int",
        TINY_RUN,
        ("pause", "pinnlab.tracking.writer:set_terminated"),
        "SIGINT",
        ["interrupted by SIGINT"],
        ENDED,
    ),
    (
        "run-artifacts-int",
        TINY_RUN,
        ("pause", "pinnlab.tracking.writer:RunTracker._log_artifacts"),
        "SIGINT",
        ["interrupted by SIGINT"],
        {"KILLED"},
    ),
    # start-up: the config, the store, TensorFlow's import
    (
        "run-config-int",
        TINY_RUN,
        ("pause", "pinnlab.config:load_config"),
        "SIGINT",
        ["interrupted by SIGINT"],
        set(),
    ),
    (
        "run-store-open-term",
        TINY_RUN,
        ("pause", "pinnlab.tracking.writer:open_experiment"),
        "SIGTERM",
        ["interrupted by SIGTERM"],
        set(),
    ),
    ("run-tf-import-int", TINY_RUN, ("import", "tensorflow"), "SIGINT-group", ["interrupted by SIGINT"], {"KILLED"}),
    # after the summary was printed, while the background plots are waited for
    (
        "run-after-summary-int",
        TINY_RUN,
        ("pause", "pinnlab.cli:_wait_background"),
        "SIGINT-group",
        ["interrupted by SIGINT"],
        {"FINISHED"},
    ),
    # a step that takes minutes: the watchdog stops the run after the grace; a second signal at once
    (
        "run-slow-step-term",
        SLOW_RUN,
        ("slow", 3),
        "SIGTERM",
        ["interrupted by SIGTERM", f"within {GRACE} s", "KILLED"],
        {"KILLED"},
    ),
    (
        "run-slow-step-twice",
        SLOW_RUN,
        ("twice", 1),
        "SIGINT-group",
        ["interrupted by SIGINT", "SIGINT again", "KILLED"],
        {"KILLED"},
    ),
    # a reproduction whose first run's step does not come back within the grace: its parent run KILLED too
    (
        "reproduce-first-run-int",
        ["reproduce", "seed", "--quick"],
        ("pause", "pinnlab.reproduce.base:Session.train"),
        "SIGINT-group",
        ["interrupted by SIGINT", "parent run", "KILLED"],
        {"KILLED"},
    ),
    # sweeps with two workers: before the workers start, mid-trial, while the summary prints
    (
        "sweep-before-workers-int",
        SWEEP_RUN,
        ("pause", "pinnlab.sweep.runner:enqueue_slots"),
        "SIGINT-group",
        ["interrupted by SIGINT"],
        {"KILLED"},
    ),
    ("sweep-mid-trial-term", SWEEP_RUN, ("running", 2), "SIGTERM", ["interrupted by SIGTERM"], ENDED),
    ("sweep-mid-trial-int", SWEEP_RUN, ("running", 2), "SIGINT-group", ["interrupted by SIGINT"], ENDED),
    (
        "sweep-summary-int",
        SWEEP_RUN,
        ("pause", "pinnlab.cli:_print_sweep"),
        "SIGINT-group",
        ["interrupted by SIGINT"],
        {"FINISHED"},
    ),
    # a batch of 4 trials mid-step: every unfinished trial of the batch FAIL and queued again
    ("sweep-batch-mid-trial-int", BATCH_RUN, ("running", 4), "SIGINT-group", ["interrupted by SIGINT"], ENDED),
]
# left out by default (-m slow runs them): the file's default cases take about a minute
SLOW = {
    "run-end-flush-term",
    "run-artifacts-int",
    "run-after-summary-int",
    "run-slow-step-term",
    "run-slow-step-twice",
    "sweep-mid-trial-term",
    "sweep-mid-trial-int",
    "sweep-summary-int",
    "sweep-batch-mid-trial-int",
}


def _statuses(home: Path) -> list[str]:
    db = home / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        try:
            return [s for (s,) in con.execute("select status from runs")]
        except sqlite3.OperationalError:  # tables not created yet
            return []


def _trial_states(home: Path) -> list[str]:
    journal = home / "optuna.journal"
    if not journal.exists():
        return []

    from pinnlab.sweep.study import open_storage

    storage = open_storage(f"journal:{journal}", create=False)
    return [t.state.name for s in storage.get_all_studies() for t in storage.get_all_trials(s._study_id)]


def _wait(until, proc, what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not until():
        assert proc.poll() is None, f"ended before {what}: {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not come within {LIMIT} s"
        time.sleep(0.05)


def _send(proc, name: str) -> None:
    sig = getattr(signal, name.removesuffix("-group"))
    if name.endswith("-group"):
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


@pytest.mark.parametrize(
    "argv, moment, signame, words, allowed",
    [pytest.param(*rest, id=i, marks=[pytest.mark.slow] if i in SLOW else []) for i, *rest in CASES],
)
def test_a_signal_at_this_moment(tmp_path, argv, moment, signame, words, allowed):
    (tmp_path / "launch.py").write_text(LAUNCHER)
    (tmp_path / "sigs.yaml").write_text(SWEEP)
    (tmp_path / "sigs-batch.yaml").write_text(BATCH_SWEEP)
    home = tmp_path / "pinnlab-runs"
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "PINNLAB_HOME": str(home),
        "PINNLAB_STOP_GRACE": str(GRACE),
        "PAUSE_FILE": str(marker),
        "PAUSE_SECONDS": str(GRACE + 2),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    kind, where = moment
    if kind == "pause":
        env["PAUSE_AT"] = where
    elif kind == "import":
        env["PAUSE_IMPORT"] = where
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", *argv], cwd=tmp_path, env=env, stdout=o, stderr=e, start_new_session=True
        )
    try:
        if kind in ("pause", "import"):
            _wait(marker.exists, proc, f"the pause at {where}")
        elif kind == "running":
            _wait(lambda: _statuses(home).count("RUNNING") >= where, proc, f"{where} RUNNING runs")
        else:  # inside the first step of the slow run
            _wait(lambda: "0/3" in err.read_text(), proc, "the first step")
            time.sleep(where)
        sent = time.monotonic()
        _send(proc, signame)
        if kind == "twice":
            time.sleep(1)
            _send(proc, signame)
        proc.wait(timeout=120)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = err.read_text()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    assert proc.returncode == 130, stderr[-3000:]
    ours = [ln for ln in stderr.splitlines() if ln.startswith(f"pinnlab {argv[0]}: ") and not ln.startswith(TF_NOISE)]
    workers = [ln for ln in ours if ln.startswith("pinnlab sweep: worker ")]  # each its own line, if stopped
    assert all("interrupted by" in ln for ln in workers), workers
    lines = [ln for ln in ours if ln not in workers]
    assert len(lines) == 1, stderr[-3000:]
    missing = [w for w in words if w not in lines[0]]
    assert not missing, f"{missing} not in {lines[0]!r}"
    statuses = _statuses(home)
    assert "RUNNING" not in statuses and set(statuses) <= allowed, statuses
    assert "RUNNING" not in _trial_states(home)
    if kind in ("slow", "twice"):  # the stop did not wait for the step
        assert took < GRACE + 15, f"stopped {took:.1f} s after the signal"
