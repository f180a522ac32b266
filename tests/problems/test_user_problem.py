"""docs/problems.md's example, run as a user would: its files written into an empty directory,
then the installed ``pinnlab`` command from there (the current directory is importable)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "problems.md"


def example_files() -> dict[str, str]:
    """``<!-- example: NAME -->`` followed by a fenced block -> {NAME: its text}."""
    text = DOC.read_text()
    return dict(re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", text, re.S))


def test_the_documented_heat_problem_runs_through_the_command(tmp_path):
    files = example_files()
    assert set(files) == {"myheat.py", "heat.yaml"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    env = {**os.environ, "PINNLAB_HOME": str(tmp_path / "pinnlab-runs")}
    env.pop("PYTHONPATH", None)  # found because it is in the current directory, not on a path
    proc = subprocess.run(
        [exe, "run", "heat.yaml", "--set", "training.steps=30", "--set", "diagnostics.every=10", "--json", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["steps_run"] == 30
    assert set(summary["final_metrics"]) >= {"loss/residual", "loss/initial", "loss/boundary"}
    assert summary["rel_l2_error"] is not None  # the exact solution is known
    assert summary["mlflow_run_id"]


def test_a_derivative_over_an_unknown_coordinate_is_refused_at_validation(tmp_path, monkeypatch):
    from pinnlab.cli import main

    text = example_files()["myheat.py"].replace('("u_t", "u_xx")', '("u_t", "u_yy")')
    (tmp_path / "myheat_bad.py").write_text(text)
    (tmp_path / "heat.yaml").write_text(example_files()["heat.yaml"].replace("myheat:", "myheat_bad:"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["run", "heat.yaml", "--print-config"]) == 2
