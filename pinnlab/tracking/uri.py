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
is one line within seconds and before anything is written: a tracking server must answer an HTTP
request within :data:`PROBE_SECONDS` (MLflow itself retries a refused connection for minutes), a
database server must accept a TCP connection, and an existing SQLite file must be a database.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from pinnlab.errors import ConfigError, StoreError

__all__ = [
    "STORE_DIRNAME",
    "default_store",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "uri_origin",
    "artifact_root_for",
    "ui_command",
    "default_storage_url",
    "sqlite_path",
    "journal_path",
    "local_path",
    "display_url",
    "check_tracking_store",
    "check_server",
    "PROBE_SECONDS",
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


def ui_command(tracking_uri: str, experiment_id: str | None = None) -> str:
    """How to look at the runs: the MLflow UI on this store (a server serves its own UI), at the
    experiment's runs table when its id is given (MLflow 3 opens an experiment on an overview
    page; the runs table is ``#/experiments/<id>/runs``)."""
    runs = f"/#/experiments/{experiment_id}/runs" if experiment_id else ""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}{runs}"
    command = f"mlflow ui --backend-store-uri {tracking_uri}"
    return f"{command}, then open http://127.0.0.1:5000{runs}" if runs else command


def default_storage_url(store: Path) -> str:
    """The Optuna storage of ``pinnlab sweep`` in a store directory: ``journal:<store>/optuna.journal``."""
    return f"{JOURNAL_PREFIX}{store / 'optuna.journal'}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None (another scheme, or an in-memory database).

    ``sqlite:///rel/m.db`` is relative to the working directory, ``sqlite:////abs/m.db`` absolute;
    a query string (``?timeout=20``) is not part of the path.  ``~`` is left as it is (SQLite
    does not expand it either).
    """
    if not url.startswith(SQLITE_PREFIX):
        return None
    db = url[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(db) if db and db != ":memory:" else None


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


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for output, tags, reports and errors)."""
    if "://" not in url or "@" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (any parse error): hide everything between scheme and host
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


PROBE_SECONDS = 5.0  # a server on the network answers in milliseconds; 5 s allows a slow start
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}


def _mlflow_error(tracking_uri: str | None, problem: str, fix: str) -> StoreError:
    origin = uri_origin(tracking_uri)
    return StoreError(
        StoreError.MLFLOW + (f" ({origin})" if origin else ""), resolve_tracking_uri(tracking_uri), problem, fix
    )


def check_server(url: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the server of ``url`` cannot be reached (None when it accepts a TCP connection).

    Only the host and port are tried: whether the server speaks the right protocol is for its
    client to say, but a refused or silent address is known here in at most ``timeout`` seconds.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+", 1)[0]
    try:
        host, port = parsed.hostname, parsed.port or _DEFAULT_PORTS.get(scheme)
    except ValueError as exc:  # a port that is not a number
        return str(exc)
    if not host or port is None:
        return None  # a Unix socket or a driver-specific form: the client will tell
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def check_tracking_store(tracking_uri: str | None = None, timeout: float = PROBE_SECONDS) -> str:
    """The resolved tracking URI, once its store looks usable; else a one-line StoreError.

    A tracking server must answer ``GET /health`` (any HTTP status counts as an answer); a database
    server must accept a connection; an existing ``sqlite:///`` file must be an SQLite database and
    a new one must be creatable.  Nothing is written.
    """
    if tracking_uri is not None and not tracking_uri.strip():
        raise ConfigError("--tracking-uri", "'' is not allowed: give a URI, or leave the option out for the default")
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            text = "timed out" if isinstance(reason, socket.timeout) else str(getattr(reason, "strerror", None) or reason)
            raise _mlflow_error(
                tracking_uri,
                f"the tracking server does not answer ({text}; waited at most {timeout:g} s)",
                "start it (`mlflow server ...`) or give the URI it answers on",
            ) from None
        return uri
    db = sqlite_path(uri)
    if db is not None:
        try:
            if db.is_dir():
                raise _mlflow_error(tracking_uri, f"{str(db)!r} is a directory", "name a database file, e.g. .../mlflow.db")
            if db.is_file():
                with db.open("rb") as f:
                    head = f.read(16)
                if head and head != _SQLITE_MAGIC:
                    raise _mlflow_error(
                        tracking_uri,
                        f"{str(db)!r} is not an SQLite database",
                        "give the URI of the MLflow database, or move that file away",
                    )
            else:
                above = db.parent
                while not above.exists() and above != above.parent:
                    above = above.parent
                if not above.is_dir() or not os.access(above, os.W_OK | os.X_OK):
                    raise _mlflow_error(
                        tracking_uri,
                        f"cannot create {str(db)!r} ({str(above)!r} is not a writable directory)",
                        "give a tracking URI whose directory can be created and written",
                    )
        except OSError as exc:
            raise _mlflow_error(tracking_uri, f"cannot read it ({exc.strerror})", "check the path") from None
        return uri
    if "://" in uri:
        problem = check_server(uri, timeout)
        if problem:
            raise _mlflow_error(tracking_uri, f"the database server cannot be reached ({problem})",
                                "start it or give a URI it answers on")
    return uri
