"""Where pinnlab's stores live, and how their URLs read: no MLflow, no Optuna, no SQLAlchemy at import.

The default store is a directory (:func:`default_store`: ``$PINNLAB_HOME``, else ``./pinnlab-runs``)
holding ``mlflow.db`` (the MLflow tracking store, SQLite), ``artifacts/`` and ``optuna.journal``
(the Optuna storage of ``pinnlab sweep``), so that a sweep needs no server.

The tracking URI is, in order: an explicit ``tracking_uri`` (``--tracking-uri``), the environment
variable ``MLFLOW_TRACKING_URI``, else ``sqlite:///<abs>/mlflow.db`` in the default store.  For a
``sqlite:///`` URI the artifacts go next to the database file (``<db dir>/artifacts``); a tracking
server decides for itself.

The URL parsing that several modules need lives here once: the database file of a ``sqlite:///``
URL (:func:`sqlite_path`), the file of an Optuna journal (:func:`journal_path`), a local directory
behind an artifact URI (:func:`local_path`) and a URL fit to print, its password hidden
(:func:`display_url`).  Importable from the sweep parent and the analysis without pulling in mlflow.

:func:`check_tracking_store` looks at a store before MLflow does, so that a store that cannot work
is one line within seconds and before anything is written: an in-memory database (:func:`in_memory`)
and a scheme MLflow has no store for are refused, a tracking server must answer an HTTP request
within :data:`PROBE_SECONDS` (MLflow itself retries for minutes), a database server must answer
(:func:`check_server`), and a SQLite file must be MLflow's own at the installed schema revision
(:func:`sqlite_problem`, which reads ``sqlite_master`` through a read-only connection), or, for a
command that may create a store, not exist yet or hold no table.  The Optuna side uses the same
pieces (:func:`pinnlab.sweep.study.check_rdb_storage`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import socket
import sqlite3
import struct
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from pinnlab.core.errors import ConfigError, StoreError, display_url

__all__ = [
    "STORE_DIRNAME",
    "default_store",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "uri_origin",
    "artifact_root_for",
    "ui_command",
    "runs_url",
    "UI_ADDRESS",
    "RUNS_VIEW",
    "BY_OUTCOME",
    "default_storage_url",
    "sqlite_path",
    "journal_path",
    "local_path",
    "display_url",
    "check_tracking_store",
    "check_server",
    "in_memory",
    "sqlite_problem",
    "foreign_server_problem",
    "sqlite_tables",
    "mlflow_schema_revisions",
    "PROBE_SECONDS",
    "PROBE_ENV",
    "probe_seconds",
]

STORE_DIRNAME = "pinnlab-runs"
SQLITE_PREFIX = "sqlite:///"
JOURNAL_PREFIX = "journal:"


def default_store() -> Path:
    """The embedded store's directory: ``$PINNLAB_HOME`` if set, else ``./pinnlab-runs`` (absolute)."""
    home = os.environ.get("PINNLAB_HOME")
    return Path(home).expanduser().resolve() if home else (Path.cwd() / STORE_DIRNAME).resolve()


def default_tracking_uri() -> str:
    """``sqlite:///<abs>/mlflow.db`` inside :func:`default_store`."""
    return f"{SQLITE_PREFIX}{(default_store() / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI`` if set, else :func:`default_tracking_uri`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def uri_origin(uri: str | None) -> str:
    """Where :func:`resolve_tracking_uri` took the URI from, for error messages ("" when given)."""
    if uri:
        return ""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "from $MLFLOW_TRACKING_URI"
    return "the default store in $PINNLAB_HOME" if os.environ.get("PINNLAB_HOME") else "the default store"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where new experiments keep artifacts: ``<db dir>/artifacts`` for a SQLite file, else None.

    None leaves the choice to MLflow (a tracking server's ``--default-artifact-root``).  A path,
    not a URI, because MLflow resolves local paths itself.
    """
    db = sqlite_path(tracking_uri)
    return str(db.expanduser().resolve().parent / "artifacts") if db is not None else None


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# MLflow 3's UI shows an experiment in its GenAI view (traces; no runs table) unless told
# otherwise: this URL parameter opens the model-training view, whose first tab is the runs table.
RUNS_VIEW = "workflowType=machine_learning"
# Sorted by anything but the start time, the runs table lists child runs as rows of their own
# (by start time it folds them under their parent): sorted by the tag `outcome`, a sweep's trials
# show their names, divergent outcomes (blowup, diverging, nan) before stable, the parent last.
BY_OUTCOME = "orderByKey=tags.%60outcome%60&orderByAsc=true"


def runs_url(tracking_uri: str, experiment_id: str, by_outcome: bool = False) -> str:
    """The address of an experiment's runs table in the MLflow UI: a tracking server's own, else
    that of ``mlflow ui`` on its default address (:data:`UI_ADDRESS`); ``by_outcome``: sorted by
    the tag ``outcome``, every child run a row (:data:`BY_OUTCOME`)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}/runs?{RUNS_VIEW}" + (f"&{BY_OUTCOME}" if by_outcome else "")


def ui_command(tracking_uri: str, experiment_id: str | None = None, by_outcome: bool = False) -> str:
    """How to look at the runs: the MLflow UI on this store (a server serves its own UI), at the
    experiment's runs table when its id is given (:func:`runs_url`)."""
    url = runs_url(tracking_uri, experiment_id, by_outcome) if experiment_id else None
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {url or tracking_uri.rstrip('/')}"
    command = f"mlflow ui --backend-store-uri {tracking_uri}"
    return f"{command}, then open {url}" if url else command


def default_storage_url(store: Path) -> str:
    """The Optuna storage of ``pinnlab sweep`` in a store directory: ``journal:<store>/optuna.journal``."""
    return f"{JOURNAL_PREFIX}{store / 'optuna.journal'}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``sqlite+<driver>:///`` too), or None (another
    scheme, or an in-memory database, see :func:`in_memory`).

    ``sqlite:///rel/m.db`` is relative to the working directory, ``sqlite:////abs/m.db`` absolute;
    a query string (``?timeout=20``) is not part of the path.  ``~`` is left as it is (SQLite
    does not expand it either).
    """
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or in_memory(url):
        return None
    return Path(rest.split("?", 1)[0])


def in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``sqlite:///``,
    ``sqlite:///:memory:``, a ``file:`` name with ``mode=memory``): whatever a store writes there
    is lost when the process ends, and other processes (sweep workers) never see it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite":
        return False
    path, _, query = rest.partition("?")
    path = path[1:] if path.startswith("/") else path
    return path in ("", ":memory:") or ":memory:" in path or "mode=memory" in f"{path}?{query}"


def journal_path(url: str) -> str | None:
    """The file of an Optuna journal storage: ``journal:PATH``, or a plain path ending in
    ``.journal`` / ``.log``; None for any other URL."""
    if url.startswith(JOURNAL_PREFIX):
        return url[len(JOURNAL_PREFIX) :]
    if "://" not in url and url.endswith((".journal", ".log")):
        return url
    return None


def local_path(uri: str) -> Path | None:
    """The local directory behind an artifact URI (a plain path or ``file://``), else None."""
    if "://" not in uri:
        return Path(uri)
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return None


PROBE_SECONDS = 5.0  # a server on the network answers in milliseconds; 5 s allows a slow start
PROBE_ENV = "PINNLAB_PROBE_SECONDS"  # overrides PROBE_SECONDS (seconds, > 0): a slow network, or a quick refusal


def probe_seconds() -> float:
    """:data:`PROBE_SECONDS`, or ``$PINNLAB_PROBE_SECONDS`` when it is a positive finite number."""
    try:
        value = float(os.environ.get(PROBE_ENV, ""))
    except ValueError:
        return PROBE_SECONDS
    return value if 0 < value < float("inf") else PROBE_SECONDS


_SQLITE_MAGIC = b"SQLite format 3\x00"
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}
# PostgreSQL's SSLRequest: the shortest message a server must answer (one byte, 'S' or 'N'), sent
# before any credentials, so a listener that accepts connections but never speaks is found out.
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
# The tables that make a database a tool's own (MLflow's also hold alembic's revision).
MLFLOW_TABLES = frozenset({"experiments", "runs", "alembic_version"})
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
_KINDS = {  # kind: (what it is, how a missing one reads, its tables)
    "mlflow": ("an MLflow tracking database", "no MLflow store at", MLFLOW_TABLES),
    "optuna": ("an Optuna storage", "no SQLite database at", OPTUNA_TABLES),
}
_SERVER_ENGINES = {"postgresql", "mysql", "mssql"}
# The schemes MLflow's tracking store registry knows without plugins (plugins add theirs through
# the ``mlflow.tracking_store`` entry points).
_MLFLOW_SCHEMES = {
    "",
    "file",
    "databricks",
    "databricks-uc",
    "uc",
    "http",
    "https",
    "postgresql",
    "mysql",
    "sqlite",
    "mssql",
}


def _mlflow_error(tracking_uri: str | None, problem: str, fix: str) -> StoreError:
    origin = uri_origin(tracking_uri)
    return StoreError(
        StoreError.MLFLOW + (f" ({origin})" if origin else ""), resolve_tracking_uri(tracking_uri), problem, fix
    )


def check_server(url: str, timeout: float | None = None) -> str | None:
    """Why the server of ``url`` cannot be used (None when it answers).

    A TCP connection to the host and port, and for PostgreSQL an SSLRequest that the server must
    answer (MySQL speaks first, so a greeting byte is awaited): a refused, silent or mute address
    is known here in at most ``timeout`` seconds, before a client library waits on it for minutes.
    Credentials and the database name are for the client to check.
    """
    timeout = probe_seconds() if timeout is None else timeout
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+", 1)[0]
    try:
        host, port = parsed.hostname, parsed.port or _DEFAULT_PORTS.get(scheme)
    except ValueError as exc:  # a port that is not a number
        return str(exc)
    if not host or port is None:
        return None  # a Unix socket or a driver-specific form: the client will tell
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if scheme == "postgresql":
                sock.sendall(_PG_SSL_REQUEST)
            if scheme in ("postgresql", "mysql") and not sock.recv(1):
                return f"{host}:{port} closed the connection without answering"
            return None
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


@functools.lru_cache(maxsize=1)
def mlflow_schema_revisions() -> tuple[str, frozenset[str]]:
    """(head, every revision) of the installed MLflow's tracking schema, read from its migration
    scripts' ``revision`` / ``down_revision`` lines without importing mlflow or alembic; ("",
    empty) when they cannot be found."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return "", frozenset()
    versions = Path(next(iter(spec.submodule_search_locations))) / "store" / "db_migrations" / "versions"
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text(errors="replace")
        revisions.update(re.findall(r'^revision\s*=\s*["\']([0-9a-f]+)["\']', text, re.M))
        for line in re.findall(r"^down_revision\s*=\s*(.+)$", text, re.M):
            parents.update(re.findall(r'["\']([0-9a-f]+)["\']', line))
    heads = revisions - parents
    return (heads.pop() if len(heads) == 1 else ""), frozenset(revisions)


def sqlite_tables(db: Path) -> tuple[set[str], str | None]:
    """(table names, MLflow's alembic revision or None) of an existing SQLite file, read through a
    read-only connection: nothing is created, migrated or locked for writing.  Raises
    sqlite3.Error for a file SQLite cannot read."""
    uri = f"file:{quote(str(db.expanduser().resolve()))}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=probe_seconds())
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        return tables, revision
    finally:
        con.close()


def server_tables(url: str, timeout: float | None = None) -> tuple[set[str], str | None] | None:
    """(table names, MLflow's alembic revision or None) of the database a server URL names, read
    through SQLAlchemy (``postgresql://`` through psycopg 3, with a connect timeout); None when it
    cannot be read here (driver, credentials), which the tool's own client then reports."""
    import sqlalchemy

    timeout = probe_seconds() if timeout is None else timeout
    engine_url, connect_args = url, {}
    if url.startswith("postgresql"):
        connect_args = {"connect_timeout": max(1, int(timeout))}
        if url.startswith("postgresql://"):
            engine_url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        engine = sqlalchemy.create_engine(engine_url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as con:
                tables = set(sqlalchemy.inspect(con).get_table_names())
                revision = None
                if "alembic_version" in tables:
                    revision = con.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
                return tables, revision
        finally:
            engine.dispose()
    except Exception:  # no driver, bad credentials, no such database: the tool's client says so
        return None


def foreign_server_problem(url: str, kind: str) -> tuple[str, str] | None:
    """(problem, fix) when the database of a server URL is the other tool's (Optuna's tables in
    an MLflow store, or the reverse) or an MLflow schema older than the installed MLflow's: the
    checks of :func:`sqlite_problem` that need no file.  Only reads."""
    found = server_tables(url)
    if found is None:
        return None
    tables, revision = found
    what, _, own = _KINDS[kind]
    other_what, _, other = next(v for k, v in _KINDS.items() if k != kind)
    if own <= tables:
        return _revision_problem(revision) if kind == "mlflow" else None
    if other <= tables:
        return f"the database is {other_what}, not {what}", f"give {what}'s URI (keep the two stores apart)"
    return None


def _revision_problem(revision: str | None) -> tuple[str, str] | None:
    """Why an MLflow database at ``revision`` must not be opened by this MLflow (which would
    migrate it on open, with no way back), or None when it is at the installed head."""
    head, known = mlflow_schema_revisions()
    if not head or revision == head:
        return None
    if revision in known:
        return (
            f"its MLflow schema is at revision {revision}, older than this MLflow's {head}",
            "back it up, then run `mlflow db upgrade <URI>` (pinnlab does not migrate a store)",
        )
    return (
        f"its MLflow schema revision {revision} is unknown to this MLflow (expects {head})",
        "use the MLflow version that wrote it",
    )


def sqlite_problem(db: Path, kind: str, create: bool) -> tuple[str, str] | None:
    """(problem, fix) when the SQLite file ``db`` cannot serve as ``kind``'s store (``"mlflow"`` or
    ``"optuna"``), else None; only reads.

    A store is created or migrated only where that cannot damage anything: with ``create`` (a
    command that writes a new store when none is there) a file that does not exist yet or a
    database without any table; an existing database must already be that tool's, and an MLflow
    database must be at the installed MLflow's schema revision (MLflow would migrate an older one
    on open, with no way back).  Without ``create`` (commands that only read) the store must
    exist.
    """
    what, missing, own = _KINDS[kind]
    other_what, _, other = next(v for k, v in _KINDS.items() if k != kind)
    try:
        if db.is_dir():
            return f"{str(db)!r} is a directory", "name a database file"
        if not db.is_file():
            if not create:
                return f"{missing} {str(db)!r}", "give the URI the sweep or run used (check its spelling)"
            above = db.parent
            while not above.exists() and above != above.parent:
                above = above.parent
            if not above.is_dir() or not os.access(above, os.W_OK | os.X_OK):
                return (
                    f"cannot create {str(db)!r} ({str(above)!r} is not a writable directory)",
                    "give a path whose directory can be created and written",
                )
            return None
        with db.open("rb") as f:
            head = f.read(16)
        if head and head != _SQLITE_MAGIC:
            return f"{str(db)!r} is not an SQLite database", "give the URI of the store, or move that file away"
        tables, revision = sqlite_tables(db)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})", "check the path"
    except sqlite3.Error as exc:
        return f"cannot read it ({exc})", "check the file"
    if own <= tables:
        return _revision_problem(revision) if kind == "mlflow" else None
    if other <= tables:
        return f"{str(db)!r} is {other_what}, not {what}", f"give {what}'s URI (keep the two stores apart)"
    if tables:
        return (
            f"{str(db)!r} holds other tables ({', '.join(sorted(tables)[:4])}), not {what}",
            "give the URI of the store, or a new file",
        )
    if not create:
        return f"{str(db)!r} is an empty database, not {what}", "give the URI of the store the runs were written to"
    return None


def check_tracking_store(tracking_uri: str | None = None, timeout: float | None = None, create: bool = True) -> str:
    """The resolved tracking URI, once its store looks usable; else a one-line StoreError.

    Refused: an in-memory database (the runs would be lost with the process), a scheme MLflow has
    no store for; a tracking server must answer ``GET /health`` (any HTTP status counts as an
    answer) within ``timeout``; a database server must answer (:func:`check_server`); a
    ``sqlite:///`` file must pass :func:`sqlite_problem` (``create=False`` for commands that only
    read: the store must exist and be MLflow's).  Nothing is written.
    """
    if tracking_uri is not None and not tracking_uri.strip():
        raise ConfigError("--tracking-uri", "'' is not allowed: give a URI, or leave the option out for the default")
    uri = resolve_tracking_uri(tracking_uri)
    timeout = probe_seconds() if timeout is None else timeout
    if in_memory(uri):
        raise _mlflow_error(
            tracking_uri,
            "an in-memory database keeps nothing once the command ends",
            "give a database file (sqlite:///PATH/mlflow.db) or a tracking server",
        )
    scheme = urlparse(uri).scheme.lower()
    base = "" if len(scheme) == 1 else scheme.split("+", 1)[0]  # a Windows drive letter is a path
    if base not in _MLFLOW_SCHEMES | _plugin_schemes():
        raise _mlflow_error(
            tracking_uri,
            f"MLflow has no tracking store for scheme {scheme!r}",
            "give http(s)://HOST:PORT, sqlite:///PATH, postgresql://..., mysql://... or mssql://...",
        )
    if base in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            text = (
                "timed out" if isinstance(reason, socket.timeout) else str(getattr(reason, "strerror", None) or reason)
            )
            raise _mlflow_error(
                tracking_uri,
                f"the tracking server does not answer ({text}; waited at most {timeout:g} s)",
                "start it (`mlflow server ...`) or give the URI it answers on",
            ) from None
        return uri
    db = sqlite_path(uri)
    if db is not None:
        problem = sqlite_problem(db, "mlflow", create)
        if problem:
            raise _mlflow_error(tracking_uri, *problem)
        return uri
    if "://" in uri:
        problem = check_server(uri, timeout)
        if problem:
            raise _mlflow_error(
                tracking_uri,
                f"the database server cannot be reached ({problem})",
                "start it or give a URI it answers on",
            )
        foreign = foreign_server_problem(uri, "mlflow") if base in _SERVER_ENGINES else None
        if foreign:
            raise _mlflow_error(tracking_uri, *foreign)
    return uri


@functools.lru_cache(maxsize=1)
def _plugin_schemes() -> frozenset[str]:
    """Schemes that installed MLflow plugins register (entry points ``mlflow.tracking_store``)."""
    from importlib.metadata import entry_points

    return frozenset(ep.name for ep in entry_points(group="mlflow.tracking_store"))
