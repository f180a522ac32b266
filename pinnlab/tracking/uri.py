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
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

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


def ui_command(tracking_uri: str) -> str:
    """How to look at the runs: the MLflow UI on this store (a server serves its own UI)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri}"


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
