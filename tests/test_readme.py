"""Every command in the README works as written.

Shell commands are taken from the README's ```bash blocks and run with the test's Python
environment first on PATH, in a scratch directory; the Python block is executed; the documented
error line is compared with the real one.  The test command itself (the ``ci:test`` block) is what
runs this file and is not run again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pinnlab.core.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[tuple[str, str]]:
    """(marker before the block or "", block text) for each fenced block of ``lang``."""
    out = []
    for m in re.finditer(r"(<!-- (ci:\w+) -->\s*)?```" + lang + r"\n(.*?)```", README, re.S):
        out.append((m.group(2) or "", m.group(3)))
    return out


def shell_commands() -> list[str]:
    """Every command line of the ```bash blocks except the two set-up blocks (tested below)."""
    cmds = []
    for marker, text in blocks("bash"):
        if marker in ("ci:test", "ci:setup"):
            continue
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def env_with_venv() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_readme_has_the_two_setup_commands():
    markers = [m for m, _ in blocks("bash")]
    assert markers.count("ci:setup") == 1 and markers.count("ci:test") == 1


def run(cmd: str, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, shell=True, cwd=cwd, env=env or env_with_venv(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd!r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("cmd", shell_commands())
def test_shell_command_works_as_written(cmd, tmp_path):
    proc = run(cmd, tmp_path)
    if cmd == "pinnlab run seed":
        assert "blowup" in proc.stdout  # what the README says it shows


def _setup_command() -> str:
    ((_, setup),) = [b for b in blocks("bash") if b[0] == "ci:setup"]
    return setup.strip()


def _run_setup(cmd: str, home: Path, timeout: int) -> subprocess.CompletedProcess:
    """Run the set-up command from the repository root as written, with its store redirected to a
    scratch directory (PINNLAB_HOME) so the checkout stays clean."""
    env = env_with_venv()
    env["PINNLAB_HOME"] = str(home)
    env.pop("MLFLOW_TRACKING_URI", None)
    return run(cmd, ROOT, env, timeout=timeout)


def _check_study(home: Path, n: int, study: str = "seed_divergence") -> list:
    """The sweep's promises: n trials, divergent ones PRUNED with their attributes, none RUNNING,
    one MLflow parent run with n children carrying outcome tags."""
    import mlflow
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(home / "optuna.journal")))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    assert len(trials) == n
    outcomes = [t.user_attrs.get("outcome") for t in trials]
    for t, o in zip(trials, outcomes):
        if o is not None and Outcome(o).divergent:
            assert t.state.name == "PRUNED"
            assert {"nan_onset_step", "first_nonfinite", "mlflow_run_id"} <= set(t.user_attrs)
        assert t.state.name != "RUNNING"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == n and all("outcome" in r.data.tags for r in children)
    return outcomes


def test_setup_command_works_as_written_on_the_smoke_variant(tmp_path):
    """The README's first command exactly as written (install, then the sweep with two worker
    processes), on the sweep's tiny `--smoke` variant so the default suite stays short; the
    full-size sweep is the slow test below."""
    out = _run_setup(_setup_command() + " --smoke", tmp_path, timeout=900)
    _check_study(tmp_path, 3, "seed_divergence-smoke")
    # the console says where to look at the runs
    assert f"to look: mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in out.stdout


@pytest.mark.slow
def test_setup_command_runs_the_main_sweep_and_resumes(tmp_path):
    """The full set-up command: 24 trials, stable and divergent ones, and a second run that redoes
    nothing."""
    cmd = _setup_command()
    _run_setup(cmd, tmp_path, timeout=1200)
    outcomes = _check_study(tmp_path, 24)
    assert "stable" in outcomes and any(o is not None and Outcome(o).divergent for o in outcomes), outcomes
    again = _run_setup(cmd.split("&&")[-1].strip(), tmp_path, timeout=600)
    assert "ran 0 now" in again.stdout
    _check_study(tmp_path, 24)


def test_python_block_runs():
    (code,) = [text for _, text in blocks("python")]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].steps_run > 0


def test_documented_error_line_is_the_real_one():
    (text,) = [t for _, t in blocks("text") if t.startswith("$ pinnlab")]
    lines = text.strip().splitlines()
    cmd = lines[0][2:]
    proc = subprocess.run(cmd, shell=True, env=env_with_venv(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == lines[1]
