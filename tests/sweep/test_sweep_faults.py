"""A sweep whose parent process is killed outright (SIGKILL) on the default local stores.

Without supervision the two workers of a killed sweep would run on, a plain re-run would stop at
"7/8, 1 RUNNING" with exit code 0 while they lived, and trials and runs would stay RUNNING until
``--repair``.  The workers stop within seconds of their parent (their trial FAIL, its run
KILLED, the slot queued again) and a plain re-run of the same command completes the study: every
counted trial COMPLETE or PRUNED, the killed ones FAIL, no trial and no MLflow run RUNNING, the
parent run FINISHED.  Tiny trials; the test takes as long as two TensorFlow start-ups per worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SWEEP = """\
base: seed-fixed
overrides:
  training.steps: 300
  diagnostics.every: 50
  divergence.heldout_points: 256
space:
  model.width: {low: 4, high: 8}
sampler: {name: random, seed: 0}
n_trials: 6
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _study(journal: Path):
    import optuna

    from pinnlab.sweep.study import open_storage

    return optuna.load_study(study_name="faults", storage=open_storage(f"journal:{journal}", create=False))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_kill_9_of_the_sweep_then_a_plain_rerun(tmp_path):
    (tmp_path / "faults.yaml").write_text(SWEEP)
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    env = {**os.environ, "PINNLAB_HOME": str(tmp_path / "pinnlab-runs")}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [exe, "sweep", "faults.yaml", "--workers", "2", "--quiet"]
    journal = tmp_path / "pinnlab-runs" / "optuna.journal"
    parent = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until a worker is inside a trial with its MLflow run
            if journal.exists() and "mlflow_run_id" in journal.read_text():
                break
            assert parent.poll() is None, parent.stderr.read()
            time.sleep(0.5)
        else:
            pytest.fail("no trial started within 300 s")
        workers = [p for p in _children(parent.pid) if _alive(p)]
        assert workers, "no worker processes found"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        killed = time.monotonic()
        while any(_alive(p) for p in workers) and time.monotonic() - killed < 30:
            time.sleep(0.2)
        outlived = time.monotonic() - killed
        assert not any(_alive(p) for p in workers), "workers still run 30 s after their sweep was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
    # the worker's own clean stop, or at most ORPHAN_GRACE plus a poll when a trace holds it up
    assert outlived < 15, f"workers outlived their sweep by {outlived:.1f} s"

    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr, rerun.stderr[-3000:]

    trials = _study(journal).get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states, states
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == 6, states
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed, "the trials the kill stopped must be recorded FAIL"

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'pinnlab-runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    (parent_run,) = [r for r in runs if r.info.run_name == "faults"]
    assert parent_run.info.status == "FINISHED"
    killed_runs = [r for r in runs if r.info.status == "KILLED"]
    # a trial the kill stopped before its MLflow run existed has no run to mark (a worker can be
    # between Optuna's trial and MLflow's run): every other failed trial's run is KILLED
    with_run = {t.user_attrs["mlflow_run_id"] for t in failed if "mlflow_run_id" in t.user_attrs}
    assert with_run and {r.info.run_id for r in killed_runs} == with_run
