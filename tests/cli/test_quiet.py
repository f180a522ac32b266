"""Every line a command prints is pinnlab's own: no TensorFlow, Optuna or MLflow start-up notice,
no library warning; a warning from the user's own code is still shown, once.

The commands run as the installed ``pinnlab`` in a subprocess, in a tmp directory with
``PINNLAB_HOME`` there.  Their output is checked against the shapes of pinnlab's lines (a
whitelist, :data:`OURS`), so a notice that is new tomorrow fails as today's do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from tests.problems.test_user_problem import example_files

ROOT = Path(__file__).resolve().parents[2]

# the shapes of pinnlab's lines (one line of stdout or stderr, a progress bar's \r pieces each)
OURS = [
    re.compile(r"^\s*$"),  # also a cleared progress line
    re.compile(r"^[\w.-]+:\s+\d+%\|"),  # a tqdm progress line: "seed-fixed:  40%|████ | 12/30 [...]"
    re.compile(r"^pinnlab [a-z]+: "),  # the command's own messages: "pinnlab sweep: warning: ..."
    re.compile(r"^[a-z][a-z ]*: \S"),  # "label: text": outcomes, mlflow, to look, cause, warning, tracked
    re.compile(r"^study [\w.-]+: \d+/\d+ trials"),  # a sweep's account
    re.compile(r"^best value \S+ with "),
    re.compile(r"^[a-z][a-z0-9_]* {2,}\S"),  # a run's summary table: "outcome   stable"
    re.compile(r"^  (remedy: |seed )"),  # under a cause; a replicate's row
    re.compile(r"^\([a-z]"),  # a note in parentheses: "(the MLflow store is a local file: ...)"
]
CSV_ROW = re.compile(r"^[a-z_]+,")  # `pinnlab report --format csv`: the header and every row start with a section


def _pinnlab() -> str:
    return shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")


def _run(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PINNLAB_HOME": str(cwd / "pinnlab-runs"), **(env or {})}
    for name in ("MLFLOW_TRACKING_URI", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS"):
        env.pop(name, None)  # the command's own defaults, not the test runner's
    return subprocess.run([_pinnlab(), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def foreign_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The lines of stdout and stderr that have none of pinnlab's shapes."""
    return [line for line in _lines(proc.stdout) + _lines(proc.stderr) if not any(p.match(line) for p in OURS)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`pinnlab sweep sweeps/seed_divergence.yaml --smoke --workers 2` in a fresh directory."""
    cwd = tmp_path_factory.mktemp("sweep")
    proc = _run(cwd, "sweep", str(ROOT / "sweeps" / "seed_divergence.yaml"), "--smoke", "--workers", "2")
    return cwd, proc


def test_a_sweep_with_workers_prints_only_its_own_lines(swept):
    _, proc = swept
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^study seed_divergence-smoke: 3/3 trials", proc.stdout, re.M), proc.stdout
    assert "%|" in proc.stderr  # the progress line was drawn, and checked
    assert foreign_lines(proc) == []


def test_a_run_prints_only_its_own_lines(tmp_path):
    proc = _run(tmp_path, "run", "seed-fixed", "--set", "training.steps=30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^outcome +\w", proc.stdout, re.M), proc.stdout
    assert re.search(r"^tracked: run \w+", proc.stderr, re.M), proc.stderr
    assert foreign_lines(proc) == []


def test_a_warning_is_printed_once_on_its_own_line(tmp_path):
    """seed with relu: its static cause said once before training (stderr) and once in the summary
    (as the cause, a risk or the warning, on a line of its own), never glued to the progress bar."""
    proc = _run(tmp_path, "run", "seed", "--no-track", "--set", "training.steps=40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = "model.activation 'relu': its derivatives of order >= 2 vanish almost everywhere"
    assert proc.stderr.count(text) == 1, proc.stderr
    assert re.search(rf"^known cause before training: vanishing_derivative: {re.escape(text)}", proc.stderr, re.M)
    assert proc.stdout.count(text) == 1, proc.stdout
    assert re.search(
        rf"^(warning|cause: vanishing_derivative|risk: vanishing_derivative): {re.escape(text)}", proc.stdout, re.M
    )
    assert foreign_lines(proc) == []


def test_a_csv_report_prints_only_csv(swept):
    cwd, sweep = swept
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    proc = _run(cwd, "report", "seed_divergence-smoke", "--format", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""
    rows = proc.stdout.splitlines()
    assert rows[0].startswith("section,") and len(rows) > 1
    assert [row for row in rows if not CSV_ROW.match(row)] == []


def test_a_warning_of_the_users_own_code_is_shown_once(tmp_path):
    files = example_files()  # docs/problems.md's heat problem, with a pde that warns
    (tmp_path / "myheat.py").write_text(files["myheat.py"])
    (tmp_path / "heat.yaml").write_text(files["heat.yaml"])
    (tmp_path / "warnheat.py").write_text(
        textwrap.dedent("""\
        import warnings

        from myheat import Heat


        class WarnHeat(Heat):
            def pde(self, x, d):
                warnings.warn("warnheat: this residual is the user's own", UserWarning)
                return super().pde(x, d)
        """)
    )
    proc = _run(
        tmp_path,
        "run",
        "heat.yaml",
        "--no-track",
        "--set",
        "problem.name=warnheat:WarnHeat",
        "--set",
        "training.steps=30",
        "--set",
        "diagnostics.every=10",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = [line for line in _lines(proc.stderr) if "UserWarning: warnheat: this residual is the user's own" in line]
    assert len(shown) == 1, proc.stderr  # once, although the pde runs eagerly and in every trace
    assert re.match(r"^\S*warnheat\.py:\d+: UserWarning: ", shown[0]), shown[0]  # not glued to the bar


def test_a_failed_tensorflow_import_shows_what_it_printed(tmp_path):
    """The start-up lines are dropped only when the import worked: a broken TensorFlow's own
    lines are shown with the error, a start-up notice among them included."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        textwrap.dedent("""\
        import os
        os.write(2, b"I0000 00:00:1 cudart_stub.cc:31] Could not find cuda drivers on your machine\\n")
        os.write(2, b"libtensorflow_framework.so.2: cannot open shared object file\\n")
        raise ImportError("libtensorflow_framework.so.2 not found")
        """)
    )
    proc = _run(tmp_path, "run", "seed-fixed", "--no-track", "--quiet", env={"PYTHONPATH": str(tmp_path / "fake")})
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert "libtensorflow_framework.so.2: cannot open shared object file" in lines
    assert any("Could not find cuda drivers" in line for line in lines)
    assert lines[-1].startswith("pinnlab run: internal error: ImportError: libtensorflow_framework.so.2 not found")


RETRACING = """\
import sys
from pinnlab.backend import import_tensorflow, quiet_process

tf = import_tensorflow()


def make(which):  # a new function per call, one code object per name (as a trainer's functions)
    if which == "before":
        def before(x):
            return x * 2.0
        return before

    def after(x):
        return x * 3.0
    return after


for which in ("before", "after"):
    if which == "after":
        quiet_process()
    for _ in range(7):
        tf.function(make(which))(tf.constant(1.0))
tf.get_logger().warning("another warning of TensorFlow's logger")
"""


def test_only_the_retracing_warning_of_tensorflow_is_dropped(tmp_path):
    proc = subprocess.run([sys.executable, "-c", RETRACING], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    retracing = [line for line in proc.stderr.splitlines() if "triggered tf.function retracing" in line]
    assert retracing and all("function make.<locals>.before" in line for line in retracing), proc.stderr
    assert "another warning of TensorFlow's logger" in proc.stderr


def test_a_boundary_past_the_float_range_is_inf_without_a_warning():
    """Bootstrap fits on a few nearly tied trials put the boundary many decades away, past the
    float range for some: 10**z overflows to inf, which is the answer (an open interval), not a
    RuntimeWarning per fit."""
    import numpy as np

    from pinnlab.analysis.boundary import _from_log10, fit_boundary

    x = 10.0 ** np.array([-1.5, -0.5, -2.0, 0.0, 0.0, -2.0, -1.5])
    y = np.array([1, 1, 1, 0, 1, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = fit_boundary(x, y, log=True, n_boot=100)
        assert _from_log10(400.0) == float("inf")
    assert row["status"] == "estimated" and row["high"] > 1e6 * x.max(), row
