"""Stores refused up front: in-memory, foreign, mistyped, old or silent; and a storage lost mid-sweep.

Every case of :data:`CASES` runs :func:`pinnlab.cli.main` in the bad-input harness of
``tests/cli/test_bad_input.py`` (one line ``pinnlab CMD: error: ...``, exit code 2, empty stdout, no
traceback) in a directory that also holds real stores: an MLflow SQLite database (``ml.db``), an
Optuna one (``opt.db``), an MLflow database at an older schema revision (``old.db``), a database
of neither tool (``other.db``), an empty file (``empty.db``), and the default store with study
``sw`` created by ``pinnlab sweep sw.yaml --workers 0`` (its MLflow parent run included).  Nothing
may be written: every file's bytes are compared before and after, so a schema created or migrated
inside a database is caught as well as a new file.  ``{silent}`` in a case is the port of a
listener on 127.0.0.1 that accepts connections and never answers (an HTTP tracking server or a
PostgreSQL server that hangs): the case must end within :data:`SILENT_LIMIT` seconds.

:func:`test_storage_lost_mid_sweep` stops a real PostgreSQL server (``tests/postgres.py``) while
two local workers train: one line naming the storage, exit code 2, no traceback from the sweep or
its workers, and no MLflow run left RUNNING.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pinnlab.tracking.uri import PROBE_ENV, PROBE_SECONDS, probe_seconds
from tests.cli.test_bad_input import FILES, _main, check_one_line, workdir  # noqa: F401 (fixture)

DEFAULT_PROBE_CASE = "run-tracking-silent-postgres"  # the one silent case that waits the default probe time
SILENT_LIMIT = 15  # seconds: a silent server is one line within this, not MLflow's minutes
JOURNAL = "journal:pinnlab-runs/optuna.journal"  # the default store of the case directory (conftest)
RUN_ID = "0" * 32

WRITERS = {  # commands that may create a new store, with the flag that names the tracking store
    "run": ["run", "seed"],
    "sweep": ["sweep", "sw.yaml"],
    "reproduce": ["reproduce", "seed", "--quick"],
}
READERS = {  # commands that only read the tracking store: they never create one
    "worker": ["worker", "--study-name", "sw", "--storage", JOURNAL],
    "report": ["report", "sw"],
    "dashboard": ["dashboard", "sw"],
    "plots": ["plots", RUN_ID],
}
STORAGE_USERS = {  # commands that take --storage: sweep may create a storage, the others only read
    "sweep": ["sweep", "sw.yaml"],
    "worker": ["worker", "--study-name", "sw"],
    "report": ["report", "sw"],
    "dashboard": ["dashboard", "sw"],
}
IN_MEMORY = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite+pysqlite:///:memory:",
    "sqlite:///file::memory:?cache=shared",
]
# tracking URIs no command may use, and what the one line says
FOREIGN_TRACKING = {
    "optuna-db": ("sqlite:///opt.db", ["opt.db", "is an Optuna storage"]),
    "other-tables": ("sqlite:///other.db", ["other.db", "other tables"]),
    "old-schema": ("sqlite:///old.db", ["old.db", "older than", "mlflow db upgrade"]),
    "not-sqlite": ("sqlite:///notdb.txt", ["not an SQLite database"]),
}
# ...and those only the reading commands refuse (a writing command creates the store there)
MISSING_TRACKING = {
    "empty-db": ("sqlite:///empty.db", ["empty.db", "empty database"]),
    "typo": ("sqlite:///pinnlab-runs/mlfow.db", ["mlfow.db", "no MLflow store"]),
}
FOREIGN_STORAGE = {
    "mlflow-db": ("sqlite:///ml.db", ["Optuna storage", "ml.db", "is an MLflow tracking database"]),
    "other-tables": ("sqlite:///other.db", ["Optuna storage", "other tables"]),
}
MISSING_STORAGE = {
    "empty-db": ("sqlite:///empty.db", ["Optuna storage", "empty database"]),
    "typo": ("sqlite:///pinnlab-runs/optuan.db", ["Optuna storage", "optuan.db", "no SQLite database"]),
}
SILENT_HTTP = "http://127.0.0.1:{silent}"
SILENT_PG = "postgresql://u@127.0.0.1:{silent}/db"


def _tracking_cases() -> list[tuple[str, list[str], list[str]]]:
    cases = []
    for cmd, argv in {**WRITERS, **READERS}.items():
        for i, uri in enumerate(IN_MEMORY):
            cases.append((f"{cmd}-tracking-in-memory-{i}", [*argv, "--tracking-uri", uri], ["in-memory"]))
        table = FOREIGN_TRACKING | (MISSING_TRACKING if cmd in READERS else {})
        for name, (uri, words) in table.items():
            cases.append((f"{cmd}-tracking-{name}", [*argv, "--tracking-uri", uri], ["MLflow tracking store", *words]))
        cases.append((f"{cmd}-tracking-silent-http", [*argv, "--tracking-uri", SILENT_HTTP], ["does not answer"]))
    for cmd, argv in WRITERS.items():
        cases.append((f"{cmd}-tracking-unknown-scheme", [*argv, "--tracking-uri", "nosuch://x"], ["'nosuch'"]))
        cases.append((f"{cmd}-tracking-silent-postgres", [*argv, "--tracking-uri", SILENT_PG], ["no answer"]))
    return cases


def _storage_cases() -> list[tuple[str, list[str], list[str]]]:
    cases = []
    for cmd, argv in STORAGE_USERS.items():
        for i, uri in enumerate(IN_MEMORY):
            cases.append((f"{cmd}-storage-in-memory-{i}", [*argv, "--storage", uri], ["Optuna storage", "in-memory"]))
        table = FOREIGN_STORAGE | (MISSING_STORAGE if cmd != "sweep" else {})
        for name, (uri, words) in table.items():
            cases.append((f"{cmd}-storage-{name}", [*argv, "--storage", uri], words))
        cases.append(
            (f"{cmd}-storage-silent-postgres", [*argv, "--storage", SILENT_PG], ["Optuna storage", "no answer"])
        )
    cases.append(
        (
            "sweep-one-file-for-both-stores",
            ["sweep", "sw.yaml", "--storage", "sqlite:///both.db", "--tracking-uri", "sqlite:///both.db"],
            ["both.db", "MLflow tracking store's database too"],
        )
    )
    return cases


# (id, argv, words the one error line must contain)
CASES = _tracking_cases() + _storage_cases()


# ------------------------------------------------------------------------------------------
# The stores of the case directory


def _silent_listener() -> tuple[int, threading.Event]:
    """A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stop = threading.Event()
    held = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
        for conn in held:
            conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], stop


@pytest.fixture(scope="module")
def silent_port():
    port, stop = _silent_listener()
    yield port
    stop.set()


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """The stores, made once: copied into each case's directory."""
    import mlflow
    import optuna

    root = tmp_path_factory.mktemp("stores")
    mlflow.MlflowClient(f"sqlite:///{root / 'ml.db'}").search_experiments()  # MLflow's own schema
    shutil.copy(root / "ml.db", root / "old.db")
    with sqlite3.connect(root / "old.db") as con:  # the schema of an earlier MLflow
        con.execute("UPDATE alembic_version SET version_num = '0584bdc529eb'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="x", storage=f"sqlite:///{root / 'opt.db'}")
    with sqlite3.connect(root / "other.db") as con:
        con.execute("CREATE TABLE notes (body TEXT)")
    (root / "empty.db").write_bytes(b"")
    home = root / "home"
    home.mkdir()
    (home / "sw.yaml").write_text(FILES["sw.yaml"])
    env = {**os.environ, "PINNLAB_HOME": str(home / "pinnlab-runs")}
    proc = subprocess.run(
        [sys.executable, "-m", "pinnlab", "sweep", "sw.yaml", "--workers", "0", "--quiet"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return root


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes (a table or row added shows)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_store_is_refused_up_front(workdir, templates, silent_port, capsys, monkeypatch, request, argv, words):  # noqa: F811
    if "silent" in request.node.callspec.id and request.node.callspec.id != DEFAULT_PROBE_CASE:
        monkeypatch.setenv(PROBE_ENV, "1")  # the default wait (5 s) is measured by one case, not by all
    for name in ("ml.db", "old.db", "opt.db", "other.db", "empty.db"):
        shutil.copy(templates / name, workdir / name)
    shutil.copytree(templates / "home" / "pinnlab-runs", workdir / "pinnlab-runs")
    argv = [a.format(silent=silent_port) for a in argv]
    before = _fingerprint(workdir)
    t0 = time.monotonic()
    rc = _main(argv)
    seconds = time.monotonic() - t0
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, argv[0], words, seconds)
    assert seconds < SILENT_LIMIT, f"the error took {seconds:.1f} s"
    after = _fingerprint(workdir)
    assert after == before, f"written: {sorted(k for k in after if after.get(k) != before.get(k))}"


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("1", 1.0),
        ("0.5", 0.5),
        ("0", PROBE_SECONDS),
        ("-3", PROBE_SECONDS),
        ("inf", PROBE_SECONDS),
        ("nan", PROBE_SECONDS),
        ("soon", PROBE_SECONDS),
    ],
)
def test_the_probe_time_is_the_variable_when_it_is_a_positive_number(monkeypatch, value, seconds):
    monkeypatch.setenv(PROBE_ENV, value)
    assert probe_seconds() == seconds


def test_the_table_covers_every_command_and_store():
    assert len(CASES) >= 100 and len({i for i, _, _ in CASES}) == len(CASES)
    assert {a[0] for _, a, _ in CASES} == {"run", "sweep", "worker", "report", "dashboard", "plots", "reproduce"}


def test_old_mlflow_schema_is_named_with_its_revisions(templates, tmp_path):
    from pinnlab.tracking.uri import mlflow_schema_revisions, sqlite_problem

    head, known = mlflow_schema_revisions()
    assert head and "0584bdc529eb" in known and head in known
    problem, fix = sqlite_problem(templates / "old.db", "mlflow", create=True)
    assert f"older than this MLflow's {head}" in problem and "mlflow db upgrade" in fix
    assert sqlite_problem(templates / "ml.db", "mlflow", create=False) is None
    assert sqlite_problem(templates / "opt.db", "optuna", create=False) is None
    assert sqlite_problem(templates / "empty.db", "mlflow", create=True) is None  # a new store may go there
    assert sqlite_problem(tmp_path / "new.db", "optuna", create=True) is None


# ------------------------------------------------------------------------------------------
# A PostgreSQL storage stopped mid-sweep

PG_SWEEP = """\
base: seed-fixed
overrides:
  training.steps: 20000
  diagnostics.every: 500
  divergence.heldout_points: 256
space:
  model.width: {low: 4, high: 8}
sampler: {name: random, seed: 0}
n_trials: 4
"""
TF_NOISE = ("I0000", "E0000", "W0000", "WARNING: All log messages")


@pytest.fixture
def pg_cluster():
    """A throwaway cluster of this test's own (it is stopped by the test); skipped without one."""
    from tests import postgres

    if os.environ.get("PINNLAB_TEST_POSTGRES_URL"):
        pytest.skip("the test stops its server: it needs a cluster of its own, not $PINNLAB_TEST_POSTGRES_URL")
    with postgres.or_skip(), postgres.temporary_cluster() as url:
        yield url


def _stop_server(url: str) -> None:
    import sqlalchemy

    from tests import postgres

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as con:
        data = con.execute(sqlalchemy.text("SHOW data_directory")).scalar_one()
    engine.dispose()
    argv = [postgres._bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]
    subprocess.run(postgres._as_postgres(argv), check=True, capture_output=True, timeout=60)


def _running_trials(url: str) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name="pg", storage=url.replace("postgresql://", "postgresql+psycopg://", 1))
    except KeyError:
        return 0
    return sum(t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs for t in study.get_trials())


@pytest.mark.slow  # two workers' TensorFlow start-ups before the server can be stopped mid-trial
def test_storage_lost_mid_sweep(pg_cluster, tmp_path):
    (tmp_path / "pg.yaml").write_text(PG_SWEEP)
    home = tmp_path / "pinnlab-runs"
    env = {**os.environ, "PINNLAB_HOME": str(home), "PINNLAB_HEARTBEAT_INTERVAL": "1", "PINNLAB_GRACE_PERIOD": "3"}
    err_file = tmp_path / "sweep.err"
    with err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pinnlab", "sweep", "pg.yaml", "--workers", "2", "--quiet", "--storage", pg_cluster],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            deadline = time.monotonic() + 180
            while _running_trials(pg_cluster) < 2:  # both workers inside a trial, their MLflow runs open
                assert proc.poll() is None and time.monotonic() < deadline, err_file.read_text()[-3000:]
                time.sleep(0.5)
            _stop_server(pg_cluster)
            t0 = time.monotonic()
            out, _ = proc.communicate(timeout=90)
            seconds = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = [ln for ln in err_file.read_text().splitlines() if not ln.startswith(TF_NOISE)]
    lines = [ln for ln in lines if "A new study created" not in ln and "INFO mlflow" not in ln]
    assert "Traceback" not in "\n".join(lines), "\n".join(lines)[-3000:]
    assert proc.returncode == 2 and out == "", (proc.returncode, out, lines)
    assert len(lines) == 1, lines
    assert (
        lines[0].startswith("pinnlab sweep: error: Optuna storage 'postgresql://") and "lost the connection" in lines[0]
    )
    assert seconds < 15, f"the sweep took {seconds:.1f} s to stop"
    with sqlite3.connect(f"file:{home / 'mlflow.db'}?mode=ro", uri=True) as con:
        statuses = dict(con.execute("SELECT name, status FROM runs").fetchall())
    assert statuses["pg"] == "KILLED" and "RUNNING" not in statuses.values(), statuses


@pytest.mark.parametrize(
    "url, memory, path",
    [
        ("sqlite://", True, None),
        ("sqlite:///", True, None),
        ("sqlite:///:memory:", True, None),
        ("sqlite:///:memory:?cache=shared", True, None),
        ("sqlite:///file:x?mode=memory&uri=true", True, None),
        ("sqlite+pysqlite:///:memory:", True, None),
        ("sqlite+pysqlite:///runs/m.db", False, Path("runs/m.db")),
        ("sqlite:////abs/m.db?mode=ro", False, Path("/abs/m.db")),
        ("postgresql://u@h/db", False, None),
        ("journal:/x/optuna.journal", False, None),
    ],
)
def test_in_memory_urls_have_no_file(url, memory, path):
    from pinnlab.tracking.uri import in_memory, sqlite_path

    assert in_memory(url) is memory and sqlite_path(url) == path


# (id, argv with {mlf} / {opt}: databases of a PostgreSQL server holding MLflow's and Optuna's tables, words)
PG_CASES = [
    ("sweep-storage-is-mlflow", ["sweep", "sw.yaml", "--storage", "{mlf}"], ["Optuna storage", "is an MLflow"]),
    ("report-storage-is-mlflow", ["report", "sw", "--storage", "{mlf}"], ["Optuna storage", "is an MLflow"]),
    ("run-tracking-is-optuna", ["run", "seed", "--tracking-uri", "{opt}"], ["MLflow tracking store", "is an Optuna"]),
    (
        "plots-tracking-is-optuna",
        ["plots", RUN_ID, "--tracking-uri", "{opt}"],
        ["MLflow tracking store", "is an Optuna"],
    ),
]


def test_postgres_database_of_the_other_tool_is_refused(workdir, capsys):  # noqa: F811
    import mlflow
    import optuna
    import sqlalchemy

    from tests import postgres

    def tables(url: str) -> set[str]:
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            return set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    with postgres.or_skip(), postgres.postgres_url() as url:
        base = url.rsplit("/", 1)[0]
        admin = sqlalchemy.create_engine(
            base.replace("postgresql://", "postgresql+psycopg://", 1) + "/postgres", isolation_level="AUTOCOMMIT"
        )
        names = {k: f"{k}_{os.getpid()}_{int(time.time() * 1000) % 10**8}" for k in ("mlf", "opt")}
        with admin.connect() as con:
            for name in names.values():
                con.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        urls = {k: f"{base}/{name}" for k, name in names.items()}
        mlflow.MlflowClient(urls["mlf"].replace("postgresql://", "postgresql+psycopg://", 1)).search_experiments()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.create_study(study_name="x", storage=urls["opt"].replace("postgresql://", "postgresql+psycopg://", 1))
        before = {k: tables(u) for k, u in urls.items()}
        capsys.readouterr()  # MLflow's own log of the schema it created above
        for _, argv, words in PG_CASES:
            argv = [a.format(**urls) for a in argv]
            t0 = time.monotonic()
            rc = _main(argv)
            out, err = capsys.readouterr()
            check_one_line(rc, out, err, argv[0], words, time.monotonic() - t0)
        assert {k: tables(u) for k, u in urls.items()} == before
