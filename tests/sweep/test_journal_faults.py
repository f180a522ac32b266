"""Optuna stores after faults: damaged journal tails, damage inside a journal, foreign and damaged
stores, a full disk, stale locks and studies without trials.

One real 2-trial sweep (``seed-fixed``, 20 steps, one worker) is made once per module; its journal
is the template that the in-process tail checks damage copies of (cut at several offsets, garbage,
NUL bytes, half a record).  A few cases run the installed command end to end: a re-run of the sweep
on a cut or garbage tail, and a sweep under a file-size limit (a full disk) then its re-run.

:data:`CASES` are bad stores given to report, dashboard, sweep and worker: each is one line on
stderr, exit code 2, no traceback, nothing written (the store's bytes included).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from pinnlab.core.errors import StoreError
from pinnlab.sweep.journal import LOCK_SUFFIX, scan_journal
from pinnlab.sweep.read import read_study
from pinnlab.sweep.study import open_storage
from tests.cli.test_bad_input import TF_NOISE, _main, workdir  # noqa: F401
from tests.cli.test_bad_input import test_bad_input as bad_input_case

SWEEP = """\
base: seed-fixed
overrides:
  training.steps: 20
space:
  model.width: {low: 4, high: 8}
sampler: {name: random, seed: 0}
n_trials: 2
"""


def _exe() -> str:
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    assert exe, "the pinnlab command is not installed"
    return exe


def _pinnlab(cwd: Path, *argv: str, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PINNLAB_HOME": str(cwd / "pinnlab-runs")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [_exe(), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec
    )


def _pinnlab_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's start-up lines and Optuna's / MLflow's INFO log lines."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(TF_NOISE) and not line.startswith("[I ") and " INFO " not in line
    ]


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A finished real sweep: ``tiny.yaml``, study ``tiny``, stores in ``pinnlab-runs/``."""
    root = tmp_path_factory.mktemp("swept")
    (root / "tiny.yaml").write_text(SWEEP)
    proc = _pinnlab(root, "sweep", "tiny.yaml", "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def journal_bytes(swept) -> bytes:
    return (swept / "pinnlab-runs" / "optuna.journal").read_bytes()


def _last_start(data: bytes) -> int:
    return data.rstrip(b"\n").rfind(b"\n") + 1


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


# ------------------------------------------------------------------------------------------
# Damaged tails, in-process: (id, damage(journal) -> damaged bytes, what a repair leaves).
# "cut": the damaged last record is cut; "whole": the journal as it was (bytes appended to it are
# cut, or a complete last record gets back its newline).

TAILS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("newline-missing", lambda d: d[:-1], "whole"),
    *[(f"cut-{k}-bytes-short", (lambda k: lambda d: d[:-k])(k), "cut") for k in (2, 7, 40)],
    ("cut-mid-record", lambda d: d[: (_last_start(d) + len(d)) // 2], "cut"),
    ("cut-after-brace", lambda d: d[: _last_start(d) + 1], "cut"),
    ("garbage-bytes", lambda d: d + b"\x89garbage\xff\xfe", "whole"),
    ("garbage-line", lambda d: d + b"garbage\n", "whole"),
    ("nul-run", lambda d: d + b"\0" * 512, "whole"),
    ("nul-line", lambda d: d + b"\0" * 64 + b"\n", "whole"),
    ("cut-then-nul", lambda d: d[: _last_start(d) + 30] + b"\0" * 100, "cut"),
    ("half-a-record", lambda d: d + b'{"op_code":8,"worker_id":"w","trial_id":1,"user_attr":{"x"', "whole"),
    ("invalid-utf8", lambda d: d + b'{"op_code":8,"\xc3\x28"}', "whole"),
]


def _repaired(original: bytes, kind: str) -> bytes:
    return original if kind == "whole" else original[: _last_start(original)]


@pytest.mark.parametrize("damage, kind", [pytest.param(f, k, id=i) for i, f, k in TAILS])
def test_a_damaged_tail_is_read_as_is_and_cut_before_a_write(tmp_path, capsys, journal_bytes, damage, kind):
    journal = tmp_path / "optuna.journal"
    damaged = damage(journal_bytes)
    journal.write_bytes(damaged)
    url = f"journal:{journal}"

    record = read_study("tiny", url)  # read-only: the complete records, the file untouched
    assert [t.number for t in record.trials] == [0, 1]
    assert journal.read_bytes() == damaged and sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "reading the" in err[0] and str(journal) in err[0], err

    storage = open_storage(url, create=False)  # a command that writes: the tail is repaired first
    expected = _repaired(journal_bytes, kind)
    assert journal.read_bytes() == expected
    backups = list(tmp_path.glob("optuna.journal.damaged-*"))
    if damaged.startswith(expected) and damaged != expected:
        assert [b.read_bytes() for b in backups] == [damaged[len(expected) :]]  # nothing lost
    else:  # only the newline was missing: added, nothing cut
        assert backups == [] and kind == "whole"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pinnlab: notice: Optuna journal") and str(journal) in err[0], err

    study = optuna.load_study(study_name="tiny", storage=storage)  # and appending works again
    study.set_user_attr("after_repair", 1)
    assert scan_journal(url, journal) is None
    reread = optuna.load_study(study_name="tiny", storage=open_storage(url, create=False, read_only=True))
    assert reread.user_attrs["after_repair"] == 1 and len(reread.trials) == 2
    assert capsys.readouterr().err == ""


def test_an_append_onto_a_tail_damaged_meanwhile_cuts_it_first(tmp_path, capsys, journal_bytes):
    """A tail damaged after the command opened the journal (another process killed mid-write)."""
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(journal_bytes)
    url = f"journal:{journal}"
    study = optuna.load_study(study_name="tiny", storage=open_storage(url, create=False))
    with journal.open("ab") as f:
        f.write(b'{"op_code":8,"worker_id":"w","tri')
    study.set_user_attr("later", 2)
    assert scan_journal(url, journal) is None
    assert journal.read_bytes().startswith(journal_bytes)
    assert "cut a damaged last line" in capsys.readouterr().err
    assert optuna.load_study(study_name="tiny", storage=open_storage(url, create=False)).user_attrs["later"] == 2


# ------------------------------------------------------------------------------------------
# Bad stores through the CLI, in-process: one line, exit 2, nothing written.

SWEEP_SW = "sw.yaml"  # from tests.cli.test_bad_input.FILES: study "sw"


def _optuna_journal(path: Path) -> None:
    """A small journal written by Optuna itself: study ``sw`` with two finished trials and a user
    attribute (five lines)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="sw", storage=storage)
    for x in (1.0, 2.0):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x}, distributions={"x": optuna.distributions.FloatDistribution(0, 3)}, value=x
            )
        )
    study.set_user_attr("note", "last line")


def _middle(insert: bytes) -> Callable[[list[bytes]], list[bytes]]:
    return lambda lines: [lines[0], insert, *lines[1:]]


# damage inside a journal (not a cut tail): (id, lines -> lines, words of the error)
INSIDE: list[tuple[str, Callable[[list[bytes]], list[bytes]], list[str]]] = [
    ("garbage-line-2", _middle(b"garbage\n"), ["line 2", "head -n 1"]),
    ("nul-block-line-2", _middle(b"\0" * 64 + b"\n"), ["line 2", "head -n 1"]),
    ("json-not-an-op-line-2", _middle(b'{"a": 1}\n'), ["line 2", "not an Optuna operation"]),
    ("json-array-line-2", _middle(b"[1, 2]\n"), ["line 2", "not an Optuna operation"]),
    ("unknown-op-code", _middle(b'{"op_code": 99, "worker_id": "w"}\n'), ["line 2", "not an Optuna operation"]),
    ("op-code-as-string", _middle(b'{"op_code": "4", "worker_id": "w"}\n'), ["line 2", "not an Optuna operation"]),
    ("op-without-its-fields", _middle(b'{"op_code": 4}\n'), ["cannot replay it"]),
    ("json-not-an-op-last", lambda lines: [*lines, b'{"a": 1}\n'], ["not an Optuna operation"]),
    # what an append onto a cut tail left behind: a partial record and the next one on one line
    ("glued-records", lambda lines: [lines[0], lines[1][:25] + lines[2], *lines[3:]], ["line 2", "head -n 1"]),
    ("not-a-journal-text", lambda lines: [b"hello world\n", *lines], ["is not an Optuna journal", "line 1"]),
    ("not-a-journal-json", lambda lines: [b'{"study": "sw"}\n', *lines], ["is not an Optuna journal"]),
]


def _stores(root: Path) -> dict[str, bytes | None]:
    """The bad stores of :data:`CASES` (None: a directory), built from Optuna's own files."""
    _optuna_journal(root / "_ok.journal")
    lines = _lines((root / "_ok.journal").read_bytes())
    out: dict[str, bytes | None] = {f"{name}.journal": b"".join(f(lines)) for name, f, _ in INSIDE}
    optuna.create_study(study_name="sw", storage=f"sqlite:///{root / '_ok.db'}")
    optuna_db = (root / "_ok.db").read_bytes()
    con = sqlite3.connect(root / "_other.db")
    con.execute("create table readings (t real, v real)")
    con.commit()
    con.close()
    out.update(
        {
            "truncated-optuna.db": optuna_db[: len(optuna_db) // 2],
            "random-tables.db": (root / "_other.db").read_bytes(),
            "zero-bytes.db": b"",
            "text-file.db": b"not a database\n",
            "directory.db": None,
            "directory.journal": None,
        }
    )
    for p in root.glob("_*"):
        p.unlink()
    return out


STORE_NAMES = [f"{name}.journal" for name, _, _ in INSIDE] + [
    "truncated-optuna.db",
    "random-tables.db",
    "zero-bytes.db",
    "text-file.db",
    "directory.db",
    "directory.journal",
    "mlflow.db",
]
_WORDS = {f"{name}.journal": words for name, _, words in INSIDE}


def _url(name: str) -> str:
    return f"sqlite:///{name}" if name.endswith(".db") else f"journal:{name}"


COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "report": lambda url: ["report", "sw", "--storage", url],
    "dashboard": lambda url: ["dashboard", "sw", "--storage", url, "--out", "d.html"],
    "sweep": lambda url: ["sweep", SWEEP_SW, "--storage", url, "--workers", "0"],
    "worker": lambda url: ["worker", "--study-name", "sw", "--storage", url],
}
# an empty file is where a new SQLite store may be created: only the commands that read refuse it
_CREATES = {("sweep", "zero-bytes.db")}

CASES: list[tuple[str, list[str], list[str]]] = [
    (f"{command}-{name}", argv(_url(name)), [name, *_WORDS.get(name, [])])
    for name in STORE_NAMES
    for command, argv in COMMANDS.items()
    if (command, name) not in _CREATES
]


@pytest.fixture(scope="module")
def bad_stores(tmp_path_factory, swept) -> dict[str, bytes | None]:
    stores = _stores(tmp_path_factory.mktemp("stores"))
    stores["mlflow.db"] = (swept / "pinnlab-runs" / "mlflow.db").read_bytes()  # a real MLflow store
    return stores


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_bad_store(workdir, capsys, bad_stores, argv, words):
    for name, data in bad_stores.items():
        if data is None:
            (workdir / name).mkdir()
        else:
            (workdir / name).write_bytes(data)
    files = _snapshot(workdir)
    bad_input_case(workdir, capsys, argv, words)  # one line, exit 2, no traceback, no new file
    assert _snapshot(workdir) == files, "a store was modified"


def test_the_corpus_covers_every_store_and_command():
    assert len(CASES) >= 60 and len({i for i, _, _ in CASES}) == len(CASES)
    assert {a[0] for _, a, _ in CASES} == set(COMMANDS)


# ------------------------------------------------------------------------------------------
# Locks left behind


def _append_one(url: str) -> float:
    t0 = time.monotonic()
    study = optuna.load_study(study_name="tiny", storage=open_storage(url, create=False))
    study.set_user_attr("locked", True)
    return time.monotonic() - t0


@pytest.mark.parametrize("target", ["journal", "dangling"])
def test_a_lock_left_by_a_dead_process_does_not_hang(tmp_path, capsys, journal_bytes, target):
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(journal_bytes)
    lock = Path(str(journal) + LOCK_SUFFIX)
    # Optuna's symlink lock; an old one pointed at the path as given, which dangles when relative
    os.symlink(str(journal) if target == "journal" else "pinnlab-runs/optuna.journal", lock)
    old = time.time() - 3600
    os.utime(lock, (old, old), follow_symlinks=False)
    assert _append_one(f"journal:{journal}") < 5
    assert not os.path.lexists(lock)
    assert "removed the lock" in capsys.readouterr().err
    assert optuna.load_study(study_name="tiny", storage=open_storage(f"journal:{journal}")).user_attrs["locked"]


def test_reading_ignores_a_lock_and_a_directory_lock_is_one_line(tmp_path, journal_bytes):
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(journal_bytes)
    lock = Path(str(journal) + LOCK_SUFFIX)
    lock.mkdir()
    assert len(read_study("tiny", f"journal:{journal}").trials) == 2  # reading takes no lock
    with pytest.raises(StoreError, match="is a directory where the journal's lock goes"):
        open_storage(f"journal:{journal}", create=False)
    assert lock.is_dir() and journal.read_bytes() == journal_bytes


# ------------------------------------------------------------------------------------------
# A full disk (a file-size limit: no root needed), in-process storage and the real command


def _limit(size: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return preexec


APPEND_UNTIL_FULL = """
import sys, optuna
from pinnlab.core.errors import StoreError
from pinnlab.sweep.study import open_storage
study = optuna.load_study(study_name="tiny", storage=open_storage(sys.argv[1], create=False))
try:
    for i in range(1000):
        study.set_user_attr(f"filler{i}", "x" * 300)
except StoreError as exc:
    print(exc)
"""


def test_a_write_that_does_not_fit_is_undone(tmp_path, journal_bytes):
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(journal_bytes)
    limit = len(journal_bytes) + 2000
    proc = subprocess.run(
        [sys.executable, "-c", APPEND_UNTIL_FULL, f"journal:{journal}"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit(limit),
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cannot write to it (File too large); every record before this write is kept" in proc.stdout
    data = journal.read_bytes()
    assert data.startswith(journal_bytes) and data.endswith(b"\n") and len(data) <= limit
    assert scan_journal(f"journal:{journal}", journal) is None
    attrs = optuna.load_study(study_name="tiny", storage=open_storage(f"journal:{journal}")).user_attrs
    assert len([k for k in attrs if k.startswith("filler")]) == (len(data) - len(journal_bytes)) // len(
        _lines(data)[-1]
    )


def test_a_sweep_on_a_full_disk_stops_with_one_line_and_its_rerun_finishes(tmp_path):
    """Optuna's trial loop used to turn the failed write into ``AssertionError: Should not reach.``
    and the next append glued onto the partial record."""
    (tmp_path / "tiny.yaml").write_text(SWEEP)
    proc = _pinnlab(tmp_path, "sweep", "tiny.yaml", "--workers", "1", "--quiet", "--no-track", preexec=_limit(5000))
    lines = [line for line in _pinnlab_lines(proc.stderr) if not line.startswith("pinnlab: notice:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("pinnlab sweep: error: Optuna storage") and "File too large" in lines[0]
    journal = tmp_path / "pinnlab-runs" / "optuna.journal"
    assert scan_journal(f"journal:{journal}", journal) is None  # readable, nothing partial left
    read_study("tiny", f"journal:{journal}")

    proc = _pinnlab(tmp_path, "sweep", "tiny.yaml", "--workers", "1", "--quiet", "--no-track")
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = [t.state for t in read_study("tiny", f"journal:{journal}").trials]
    assert "RUNNING" not in states and "WAITING" not in states
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) >= 2


# ------------------------------------------------------------------------------------------
# The done-when, end to end: a re-run on a damaged tail keeps every finished trial and finishes


RERUN_TAILS = {
    "cut-mid-record": lambda d: d[: (_last_start(d) + len(d)) // 2],
    "garbage-and-nul": lambda d: d + b"\x89garbage" + b"\0" * 64,
}


@pytest.mark.parametrize("name", list(RERUN_TAILS))
def test_a_rerun_on_a_damaged_tail_finishes_the_study(tmp_path, monkeypatch, capsys, swept, journal_bytes, name):
    root = tmp_path / "copy"
    shutil.copytree(swept, root)
    journal = root / "pinnlab-runs" / "optuna.journal"
    journal.write_bytes(RERUN_TAILS[name](journal_bytes))
    before = {t.number: t.state for t in read_study("tiny", f"journal:{journal}").trials}
    capsys.readouterr()
    (root / "tiny.yaml").write_text(SWEEP.replace("n_trials: 2", "n_trials: 3"))
    tracking = f"sqlite:///{root / 'pinnlab-runs' / 'mlflow.db'}"  # the copy's, not the template's

    proc = _pinnlab(root, "sweep", "tiny.yaml", "--workers", "1", "--quiet", "--tracking-uri", tracking)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    notices = [line for line in _pinnlab_lines(proc.stderr) if line.startswith("pinnlab: notice:")]
    assert len(notices) == 1 and "cut a damaged last line" in notices[0], proc.stderr[-3000:]

    trials = read_study("tiny", f"journal:{journal}").trials
    for number, state in before.items():  # every trial finished before the damage is kept as it was
        if state in ("COMPLETE", "PRUNED"):
            assert trials[number].state == state
    assert not [t for t in trials if t.state in ("RUNNING", "WAITING")]
    assert sum(t.kind == "done" for t in trials) == 3

    monkeypatch.setenv("PINNLAB_HOME", str(root / "pinnlab-runs"))
    rc = _main(["report", "tiny", "--tracking-uri", tracking, "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert sum(json.loads(out)["states"].values()) == len(trials)


# ------------------------------------------------------------------------------------------
# Studies without finished trials: a report and a dashboard that say so (exit 0)


@pytest.mark.parametrize("storage", ["journal:e.journal", "sqlite:///e.db"])
def test_a_study_without_trials_reports_and_draws(tmp_path, monkeypatch, capsys, storage):
    monkeypatch.chdir(tmp_path)
    optuna.create_study(study_name="empty", storage=open_storage(storage))
    files = _snapshot(tmp_path)
    for fmt in ("table", "markdown", "csv", "json"):
        assert _main(["report", "empty", "--storage", storage, "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "error" not in err, err
        if fmt == "json":
            assert json.loads(out)["notes"][0].startswith("study 'empty' has no finished trials yet")
        elif fmt != "csv":
            assert "no finished trials yet" in out
    assert _main(["dashboard", "empty", "--storage", storage, "--out", "d.html"]) == 0
    out, err = capsys.readouterr()
    assert "0 trials; outcomes: -" in (tmp_path / "d.html").read_text() and err == ""
    assert {k: v for k, v in _snapshot(tmp_path).items() if k != "d.html"} == files  # the store untouched
