"""Bad input across every command: one line, exit code 2, no traceback, nothing written, at once.

A table of cases for ``run``, ``sweep``, ``worker``, ``report``, ``dashboard`` and ``reproduce``,
among them values that overflowed or exhausted memory after an MLflow run
existed, user problems that raised, impossible values that were accepted, stores that answered
after minutes of retries).  Each case asserts the exit code, exactly one line on stderr starting
``pinnlab CMD: error:`` and containing the expected words, an empty stdout, no traceback, no new
file under the case's directory (no MLflow run, no study, no output directory; ``PINNLAB_HOME``
is inside it) and the time to the error.

Most cases call :func:`pinnlab.cli.main` in-process (no TensorFlow is imported on any of these
paths, so the table runs in seconds); :data:`SUBPROCESS` runs a representative handful through the
installed ``pinnlab`` command, where a traceback would really reach the terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinnlab.cli import main

LIMIT_SECONDS = 40  # every bad input answers within 40 s, an unreachable server included
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused

USER_PROBLEMS = """
import numpy as np
from pinnlab.problems import Problem, uniform


class BadDerivative(Problem):
    name = "bad_derivative"
    coords = ("x", "t")
    derivatives = ("u_t", "u_zz")

    @property
    def domain(self):
        return np.zeros(2), np.ones(2)

    def sample(self, rng):
        return {"residual": uniform(rng, *self.domain, 64)}

    def pde(self, x, d):
        return d["u_t"] - d["u_zz"]


class NoSampler(Problem):
    name = "no_sampler"
    coords = ("x", "t")
    derivatives = ("u_t",)

    def pde(self, x, d):
        return d["u_t"]


class SamplerRaises(BadDerivative):
    derivatives = ("u_t", "u_xx")

    def sample(self, rng):
        raise RuntimeError("my sampler is broken")
"""

SWEEP = "base: seed\nspace:\n  model.width: {low: 5, high: 10}\nn_trials: 2\n"

FILES = {
    "userprobs.py": USER_PROBLEMS,
    "raising.py": "raise ZeroDivisionError('boom at import')\n",
    "dup.yaml": "base: seed\nmodel:\n  width: 3\nmodel:\n  depth: 2\n",
    "child.yaml": "base: nothere.yaml\n",
    "notdb.txt": "this is not a database\n",
    "afile": "a plain file\n",
    "adir/keep": "",
    "garbage.journal": "not a journal\n",
    "sw.yaml": SWEEP,
    "sw_empty_space.yaml": "base: seed\nspace: {}\n",
    "sw_seed.yaml": SWEEP + "sampler: {seed: -1}\n",
    "sw_dup.yaml": SWEEP + "n_trials: 3\n",
    "sw_inf.yaml": "base: seed\nspace:\n  optimizer.learning_rate: {low: 1.0e-3, high: .inf}\n",
    "sw_nan_choice.yaml": "base: seed\nspace:\n  optimizer.learning_rate: {choices: [0.1, .nan]}\n",
    "sw_override_nan.yaml": SWEEP + "overrides: {optimizer.learning_rate: .nan}\n",
    "sw_both.yaml": SWEEP + "overrides: {training.steps: 10, training.epochs: 2}\n",
    "sw_missing_base.yaml": "base: nothere.yaml\nspace:\n  model.width: {low: 5, high: 10}\n",
    "sw_unknown_path.yaml": "base: seed\nspace:\n  model.widht: {low: 5, high: 10}\n",
    "sw_steps_huge.yaml": SWEEP + "overrides: {training.steps: 1000000000000}\n",
    "sw_width_huge.yaml": "base: seed\nspace:\n  model.width: {low: 10, high: 1000000000}\n",
    "sw_trials_huge.yaml": SWEEP.replace("n_trials: 2", "n_trials: 100000000"),
    "sw_list.yaml": "- base\n- seed\n",
}

LONG = "x" * 300


def _run(*argv):
    return ["run", *argv]


# (id, argv, words the one error line must contain)
CASES = [
    # ---- run: accepted, then crashed after the MLflow run existed
    ("seed-overflow", _run("seed", "--set", "training.seed=10000000000000000"), ["training.seed", "2147483647"]),
    ("seed-negative", _run("seed", "--set", "training.seed=-1"), ["training.seed", "-1"]),
    (
        "steps-36-tib",
        _run("seed", "--set", "training.steps=1000000000000"),
        ["training.steps", "TiB", "history", "limit"],
    ),
    ("steps-1e8", _run("seed", "--set", "training.steps=100000000"), ["training.steps", "GiB", "history"]),
    ("epochs-huge", _run("seed", "--set", "training.epochs=1000000000"), ["training.epochs", "history"]),
    (
        "default-steps-huge",
        _run("poisson2d", "--set", "training.steps=null", "--set", "training.default_steps=100000000000000"),
        ["training.default_steps", "history"],
    ),
    (
        "lbfgs-iterations-huge",
        _run("seed", "--set", "optimizer.name=lbfgs", "--set", "optimizer.lbfgs_max_iter=10000000000"),
        ["optimizer.lbfgs_max_iter", "history"],
    ),
    (
        "width-oom",
        _run("seed", "--set", "model.width=1000000", "--set", "model.depth=2"),
        ["model.width", "1000000", "weights"],
    ),
    (
        "n-residual-huge",
        _run("poisson2d", "--set", "problem.params.n_residual=1000000000000"),
        ["problem.params.n_residual", "1000000000000", "memory"],
    ),
    (
        "batch-huge-points",
        _run("poisson2d", "--set", "problem.params.n_boundary=100000000000"),
        ["problem.params.n_boundary", "memory"],
    ),
    (
        "user-derivative-not-over-coords",
        _run("seed", "--set", "problem.name=userprobs:BadDerivative"),
        ["problem.name", "u_zz", "x, t"],
    ),
    # ---- run: tracebacks before anything ran
    (
        "user-module-raises-on-import",
        _run("seed", "--set", "problem.name=raising:Heat"),
        ["problem.name", "ZeroDivisionError", "boom at import"],
    ),
    (
        "user-module-missing",
        _run("seed", "--set", "problem.name=myheat:Heat"),
        ["problem.name", "No module named 'myheat'", "current directory"],
    ),
    ("user-class-missing", _run("seed", "--set", "problem.name=userprobs:Nope"), ["problem.name", "userprobs"]),
    (
        "user-problem-without-sample",
        _run("seed", "--set", "problem.name=userprobs:NoSampler"),
        ["problem.name", "domain, sample"],
    ),
    (
        "user-sampler-raises",
        _run("seed", "--set", "problem.name=userprobs:SamplerRaises"),
        ["problem.name", "RuntimeError", "my sampler is broken"],
    ),
    ("preset-name-too-long", _run(LONG), ["neither a YAML file nor a preset"]),
    ("yaml-name-too-long", _run(LONG + ".yaml"), ["cannot be read"]),
    # ---- run: impossible values accepted
    ("learning-rate-inf", _run("seed", "--set", "optimizer.learning_rate=.inf"), ["optimizer.learning_rate", "finite"]),
    ("learning-rate-nan", _run("seed", "--set", "optimizer.learning_rate=.nan"), ["optimizer.learning_rate", "finite"]),
    ("huber-delta-inf", _run("seed", "--set", "loss.huber_delta=.inf"), ["loss.huber_delta", "finite"]),
    ("loss-floor-nan", _run("seed", "--set", "divergence.loss_floor=.nan"), ["divergence.loss_floor", "finite"]),
    (
        "max-weight-ratio-nan",
        _run("seed", "--set", "divergence.max_weight_ratio=.nan"),
        ["divergence.max_weight_ratio", "finite"],
    ),
    (
        "max-weight-norm-inf",
        _run("seed", "--set", "divergence.max_weight_norm=.inf"),
        ["divergence.max_weight_norm", "finite"],
    ),
    ("clip-norm-inf", _run("seed", "--set", "regularization.clip_norm=.inf"), ["regularization.clip_norm", "finite"]),
    ("l2-nan", _run("seed", "--set", "regularization.l2=.nan"), ["regularization.l2", "finite"]),
    (
        "decay-rate-nan",
        _run("seed", "--set", "optimizer.schedule.decay_rate=.nan"),
        ["optimizer.schedule.decay_rate", "finite"],
    ),
    ("weight-nan", _run("poisson2d", "--set", "loss.weights.boundary=.nan"), ["loss.weights.boundary", "finite"]),
    ("problem-param-nan", _run("convection1d", "--set", "problem.params.beta=.nan"), ["problem.params.beta", "finite"]),
    ("duplicate-yaml-key", _run("dup.yaml"), ["dup.yaml", "'model'", "twice", "lines 2 and 4"]),
    (
        "both-budgets-two-sets",
        _run("seed", "--set", "training.epochs=1", "--set", "training.steps=100"),
        ["training.steps", "training.epochs", "not both"],
    ),
    # ---- run: misleading messages
    ("experiment-empty", _run("seed", "--experiment", ""), ["--experiment", "non-empty"]),
    ("experiment-too-long", _run("seed", "--experiment", "e" * 600), ["--experiment", "600 characters"]),
    ("missing-base-names-referrer", _run("child.yaml"), ["nothere.yaml", "the base of child.yaml"]),
    # ---- run: stores
    ("run-tracking-unreachable", _run("seed", "--tracking-uri", DEAD), ["127.0.0.1:9", "does not answer"]),
    ("run-tracking-empty", _run("seed", "--tracking-uri", ""), ["--tracking-uri", "''"]),
    (
        "run-tracking-not-a-database",
        _run("seed", "--tracking-uri", "sqlite:///notdb.txt"),
        ["notdb.txt", "not an SQLite database"],
    ),
    (
        "run-tracking-under-a-file",
        _run("seed", "--tracking-uri", "sqlite:///afile/mlflow.db"),
        ["afile", "cannot create"],
    ),
    (
        "run-tracking-db-unreachable",
        _run("seed", "--tracking-uri", "postgresql://u@127.0.0.1:9/db"),
        ["127.0.0.1:9", "cannot be reached"],
    ),
    # ---- sweep
    (
        "sweep-tracking-unreachable",
        ["sweep", "sw.yaml", "--smoke", "--tracking-uri", DEAD],
        ["127.0.0.1:9", "does not answer"],
    ),
    (
        "sweep-tracking-not-a-database",
        ["sweep", "sw.yaml", "--tracking-uri", "sqlite:///notdb.txt"],
        ["not an SQLite database"],
    ),
    ("sweep-space-empty", ["sweep", "sw_empty_space.yaml"], ["space", "at least one"]),
    ("sweep-sampler-seed-negative", ["sweep", "sw_seed.yaml"], ["sampler.seed", "-1"]),
    ("sweep-study-name-5000", ["sweep", "sw.yaml", "--study-name", "s" * 5000], ["study_name", "5000 characters"]),
    ("sweep-study-name-empty", ["sweep", "sw.yaml", "--study-name", ""], ["study_name", "non-empty"]),
    ("sweep-study-name-slash", ["sweep", "sw.yaml", "--study-name", "a/b"], ["study_name", "'/'"]),
    ("sweep-duplicate-key", ["sweep", "sw_dup.yaml"], ["sw_dup.yaml", "'n_trials'", "twice"]),
    ("sweep-bound-inf", ["sweep", "sw_inf.yaml"], ["space.optimizer.learning_rate.high", "finite"]),
    ("sweep-choice-nan", ["sweep", "sw_nan_choice.yaml"], ["space.optimizer.learning_rate", "finite"]),
    ("sweep-override-nan", ["sweep", "sw_override_nan.yaml"], ["overrides.optimizer.learning_rate", "finite"]),
    ("sweep-override-both-budgets", ["sweep", "sw_both.yaml"], ["training.epochs", "not both"]),
    ("sweep-missing-base", ["sweep", "sw_missing_base.yaml"], ["nothere.yaml", "the base of sw_missing_base.yaml"]),
    ("sweep-unknown-path", ["sweep", "sw_unknown_path.yaml"], ["space.model.widht", "unknown key"]),
    ("sweep-steps-huge", ["sweep", "sw_steps_huge.yaml"], ["training.steps", "memory"]),
    ("sweep-space-width-huge", ["sweep", "sw_width_huge.yaml"], ["space.model.width", "1000000000", "memory"]),
    ("sweep-n-trials-huge", ["sweep", "sw_trials_huge.yaml"], ["n_trials", "100000000"]),
    ("sweep-not-a-mapping", ["sweep", "sw_list.yaml"], ["sw_list.yaml", "mapping"]),
    ("sweep-file-missing", ["sweep", "nosuch.yaml"], ["nosuch.yaml", "does not exist"]),
    ("sweep-file-is-a-directory", ["sweep", "adir"], ["adir", "cannot be read"]),
    ("sweep-file-name-too-long", ["sweep", LONG + ".yaml"], ["cannot be read"]),
    ("sweep-workers-negative", ["sweep", "sw.yaml", "--workers", "-1"], ["--workers", "-1"]),
    ("sweep-workers-too-many", ["sweep", "sw.yaml", "--workers", "100000"], ["--workers", "100000"]),
    ("sweep-n-trials-zero", ["sweep", "sw.yaml", "--n-trials", "0"], ["--n-trials", "0"]),
    ("sweep-storage-empty", ["sweep", "sw.yaml", "--storage", ""], ["--storage", "''"]),
    (
        "sweep-storage-garbage-journal",
        ["sweep", "sw.yaml", "--storage", "journal:garbage.journal"],
        ["garbage.journal", "not an Optuna journal"],
    ),
    (
        "sweep-storage-sqlite-not-db",
        ["sweep", "sw.yaml", "--storage", "sqlite:///notdb.txt"],
        ["Optuna storage", "notdb.txt"],
    ),
    (
        "sweep-storage-db-unreachable",
        ["sweep", "sw.yaml", "--storage", "postgresql://u@127.0.0.1:9/db", "--workers", "0"],
        ["Optuna storage", "127.0.0.1"],
    ),
    ("sweep-storage-not-a-url", ["sweep", "sw.yaml", "--storage", "nonsense"], ["nonsense", "not a storage URL"]),
    # ---- worker
    (
        "worker-no-journal",
        ["worker", "--study-name", "s", "--storage", "journal:missing.journal"],
        ["no Optuna journal"],
    ),
    (
        "worker-garbage-journal",
        ["worker", "--study-name", "s", "--storage", "journal:garbage.journal"],
        ["not an Optuna journal"],
    ),
    (
        "worker-study-name-empty",
        ["worker", "--study-name", "", "--storage", "journal:x.journal"],
        ["--study-name", "non-empty"],
    ),
    (
        "worker-threads-zero",
        ["worker", "--study-name", "s", "--storage", "journal:x.journal", "--threads", "0"],
        ["--threads"],
    ),
    (
        "worker-n-trials-zero",
        ["worker", "--study-name", "s", "--storage", "journal:x.journal", "--n-trials", "0"],
        ["--n-trials"],
    ),
    ("worker-storage-empty", ["worker", "--study-name", "s", "--storage", ""], ["--storage", "''"]),
    # ---- report
    ("report-no-store", ["report", "nosuch"], ["no Optuna journal"]),
    ("report-study-empty", ["report", ""], ["STUDY", "non-empty"]),
    ("report-garbage-journal", ["report", "s", "--storage", "journal:garbage.journal"], ["not an Optuna journal"]),
    ("report-storage-empty", ["report", "s", "--storage", ""], ["--storage"]),
    # ---- dashboard
    ("dashboard-out-is-a-directory", ["dashboard", "s", "--out", "adir"], ["--out", "adir", "is a directory"]),
    ("dashboard-out-under-a-file", ["dashboard", "s", "--out", "afile/d.html"], ["--out", "afile", "is a file"]),
    ("dashboard-study-empty", ["dashboard", ""], ["STUDY", "non-empty"]),
    ("dashboard-no-store", ["dashboard", "nosuch"], ["no Optuna journal"]),
    # ---- reproduce
    ("reproduce-unknown", ["reproduce", "nosuch"], ["'nosuch'", "seed"]),
    ("reproduce-out-is-a-file", ["reproduce", "seed", "--out", "afile"], ["--out", "afile", "not a directory"]),
    ("reproduce-out-under-a-file", ["reproduce", "seed", "--quick", "--out", "afile/x"], ["--out", "is a file"]),
    ("reproduce-tracking-unreachable", ["reproduce", "seed", "--quick", "--tracking-uri", DEAD], ["does not answer"]),
    ("reproduce-tracking-empty", ["reproduce", "seed", "--quick", "--tracking-uri", ""], ["--tracking-uri"]),
]


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


class WouldRun(BaseException):
    """Raised instead of training: a case that slips through validation fails at once."""


def _would_run(*args, **kwargs):
    raise WouldRun("bad input was accepted and would have run")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path holding FILES as the current directory; PINNLAB_HOME inside it (conftest); the
    import path restored afterwards (the CLI appends the current directory); training, sweep
    workers and reproductions replaced by :class:`WouldRun`."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    import pinnlab.reproduce
    import pinnlab.runs
    import pinnlab.sweep.processes
    import pinnlab.sweep.runner

    monkeypatch.setattr(pinnlab.runs, "run_config", _would_run)
    monkeypatch.setattr(pinnlab.sweep.runner, "_work", _would_run)
    monkeypatch.setattr(pinnlab.sweep.processes, "run_processes", _would_run)
    monkeypatch.setattr(pinnlab.reproduce, "Session", _would_run)
    return tmp_path


def _main(argv) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        return exc.code


def check_one_line(rc, out, err, command, words, seconds):
    assert rc == 2, f"exit code {rc}, stderr {err[-2000:]!r}"
    assert "Traceback" not in err + out, err
    assert out == "", f"stdout must stay empty, got {out[:300]!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"stderr must be one line, got {err!r}"
    assert lines[0].startswith(f"pinnlab {command}: error: "), lines[0]
    missing = [w for w in words if w not in lines[0]]
    assert not missing, f"{missing} not in {lines[0]!r}"
    assert seconds < LIMIT_SECONDS, f"the error took {seconds:.1f} s"


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_bad_input(workdir, capsys, argv, words):
    before = _listing(workdir)
    t0 = time.monotonic()
    rc = _main(argv)
    seconds = time.monotonic() - t0
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, argv[0], words, seconds)
    assert _listing(workdir) == before, f"written: {sorted(_listing(workdir) - before)}"


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 60
    assert {a[0] for _, a, _ in CASES} == {"run", "sweep", "worker", "report", "dashboard", "reproduce"}
    assert len({i for i, _, _ in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------------
# The installed command, in a subprocess: what reaches a terminal.

SUBPROCESS = [
    "sweep-tracking-unreachable",
    "run-tracking-unreachable",
    "seed-overflow",
    "user-module-raises-on-import",
    "user-module-missing",
    "dashboard-out-is-a-directory",
    "duplicate-yaml-key",
]
# TensorFlow's C++ start-up lines, which pinnlab cannot suppress once TensorFlow loads; no case
# here should load it, but a stray import must fail on the pinnlab line, not on the noise.
TF_NOISE = ("I0000", "E0000", "W0000", "WARNING: All log messages")


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_input_through_the_command(workdir, case):
    _, argv, words = next(c for c in CASES if c[0] == case)
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    assert exe, "the pinnlab command is not installed"
    before = _listing(workdir)
    t0 = time.monotonic()
    proc = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - t0
    err = "".join(line + "\n" for line in proc.stderr.splitlines() if not line.startswith(TF_NOISE))
    check_one_line(proc.returncode, proc.stdout, err, argv[0], words, seconds)
    assert _listing(workdir) == before, f"written: {sorted(_listing(workdir) - before)}"


# ------------------------------------------------------------------------------------------
# The last resort: an unexpected exception is one line and exit 1; --debug shows the traceback.


def test_unexpected_error_is_one_line_with_a_hint(workdir, capsys, monkeypatch):
    import pinnlab.cli as cli

    def boom(args):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "presets", boom)
    assert cli.main(["presets"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert "internal error: RuntimeError: something nobody foresaw" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        cli.main(["presets", "--debug"])


def test_memory_error_is_named(workdir, capsys, monkeypatch):
    import pinnlab.cli as cli

    def boom(args):
        raise MemoryError

    monkeypatch.setitem(cli.COMMANDS, "presets", boom)
    assert cli.main(["presets"]) == 1
    assert "out of memory" in capsys.readouterr().err
