"""Checks of names and output paths made before anything is created (standard library only).

Why a module of its own: the CLI checks ``--experiment``, ``--study-name`` and ``--out`` before it
imports pydantic, TensorFlow, MLflow or Optuna, and the config and sweep-file models check the same
names with the same rule, so a name refused in one place is refused everywhere with the same line.
The alternative, letting MLflow or the file system refuse them, gave a traceback after a study or
run had been written (a 5,000-character study name is written to the journal, then refused by
MLflow's 500-character limit on experiment names).

Outputs never land on a store (:func:`check_output_file`, :func:`check_output_dir`): an existing
file is replaced only when it is a page pinnlab wrote (:data:`PAGE_MARKER` in its head), so an
``--out`` naming a journal, a database or any other file is refused before anything is read or
written; and no output goes into a store's own directory or an MLflow artifact tree, where it
could overwrite a run's artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path

from pinnlab.core.errors import ConfigError

__all__ = [
    "MAX_NAME_LENGTH",
    "PAGE_MARKER",
    "STORE_FILES",
    "check_name",
    "first_existing",
    "check_output_file",
    "check_output_dir",
]

# Studies and experiments become MLflow experiment and run names (limit 500) with suffixes such as
# "-smoke" and "-trial-123", and file names of dashboards (a file system allows 255 bytes).
MAX_NAME_LENGTH = 200

# In the head of every HTML page pinnlab writes (pinnlab.dashboards.page): such a file may be
# replaced by a new page; any other existing file may not.
PAGE_MARKER = '<meta name="generator" content="pinnlab">'
_OLD_PAGE_TITLE = b"<title>pinnlab divergence dashboard:"  # pages written before the marker
_HEAD_BYTES = 8192
# The files of a store directory (pinnlab.tracking.uri: the default store holds both).  MLflow
# artifact trees: ``artifacts/`` beside a store file or a ``*.db`` (pinnlab's artifact root of a
# SQLite store), and any ``mlruns/`` (MLflow's own default).
STORE_FILES = ("mlflow.db", "optuna.journal")


def check_name(field: str, value: str | None) -> str | None:
    """A study or experiment name: non-empty, at most :data:`MAX_NAME_LENGTH` characters, printable
    and without ``/`` (it names files).  ``None`` (not given) passes."""
    if value is None:
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, f"{value!r} is not allowed: must be a non-empty name")
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigError(field, f"a name of {len(value)} characters is not allowed: at most {MAX_NAME_LENGTH}")
    bad = sorted({c for c in value if not c.isprintable() or c in "/\\"})
    if bad:
        raise ConfigError(field, f"{value!r} is not allowed: no {', '.join(map(repr, bad))} in a name")
    return value


def first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (what creating ``path`` needs to write into)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_parent(flag: str, path: Path) -> None:
    """The directories above ``path`` exist or can be created by this user."""
    above = first_existing(path.parent)
    if not above.is_dir():
        raise ConfigError(flag, f"{str(path)!r} is not allowed: {str(above)!r} is a file, not a directory")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ConfigError(flag, f"{str(path)!r} is not allowed: {str(above)!r} is not writable")


def _is_page(path: Path) -> bool:
    """A file pinnlab wrote as an HTML page (its head holds :data:`PAGE_MARKER`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False
    return head.lstrip().startswith(b"<!DOCTYPE html>") and (PAGE_MARKER.encode() in head or _OLD_PAGE_TITLE in head)


def _check_not_in_store(flag: str, path: Path) -> None:
    """``path`` is not a store directory (one holding :data:`STORE_FILES`) nor inside an MLflow
    artifact tree (see :data:`STORE_FILES`); links are followed, so a link into a store is refused too."""
    where = path.resolve()
    if path.is_dir() and any((where / name).exists() for name in STORE_FILES):
        held = ", ".join(name for name in STORE_FILES if (where / name).exists())
        raise ConfigError(flag, f"{str(path)!r} is not allowed: it holds a store ({held}); give a directory of its own")
    for above in where.parents:
        if above.name == "mlruns" or (
            above.name == "artifacts"
            and (any((above.parent / name).exists() for name in STORE_FILES) or any(above.parent.glob("*.db")))
        ):
            raise ConfigError(
                flag,
                f"{str(path)!r} is not allowed: it is inside the MLflow artifact store {str(above)!r}, "
                "where it could overwrite a run's artifacts",
            )


def check_output_file(flag: str, path: str | Path) -> Path:
    """An HTML page to write: not a directory, not an existing file other than a page pinnlab wrote
    (a journal, a database, anything else), not inside a store, under directories that exist or can
    be created."""
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            raise ConfigError(flag, f"{str(path)!r} is a directory: give a file name such as {str(p / 'study.html')!r}")
        if p.exists() and not p.is_file():  # a FIFO or a device: reading its head could block
            raise ConfigError(flag, f"{str(path)!r} is not a regular file: give a file name such as 'study.html'")
        if p.exists() and not _is_page(p):
            raise ConfigError(
                flag,
                f"{str(path)!r} exists and is not a page pinnlab wrote: it would be overwritten; "
                "give a new file name (FILE.html) or remove it first",
            )
        if p.exists() and not os.access(p, os.W_OK):
            raise ConfigError(flag, f"{str(path)!r} is not writable")
        _check_not_in_store(flag, p)
        _check_parent(flag, p)
    except OSError as exc:  # a name too long, a loop of links
        raise ConfigError(flag, f"{str(path)[:80]!r} cannot be used ({exc.strerror})") from None
    return p


def check_output_dir(flag: str, path: str | Path) -> Path:
    """A directory to write into: a directory or creatable, not a store directory nor inside an
    artifact tree, under directories that exist or can be created."""
    p = Path(path).expanduser()
    try:
        if p.exists() and not p.is_dir():
            raise ConfigError(flag, f"{str(path)!r} exists and is not a directory")
        if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(flag, f"{str(path)!r} is not writable")
        _check_not_in_store(flag, p)
        if not p.exists():
            _check_parent(flag, p)
    except OSError as exc:
        raise ConfigError(flag, f"{str(path)[:80]!r} cannot be used ({exc.strerror})") from None
    return p
