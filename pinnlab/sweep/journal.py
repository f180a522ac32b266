"""Optuna journal files that a fault never leaves unreadable.

A journal is one JSON record (an Optuna operation) per line.  Optuna skips a last line without its
newline, but appends the next record straight onto it: the glued line then breaks every later read
(``JSONDecodeError``) or hides a new study (``AssertionError: Should not reach.``).  So:

- every open scans the file: a line that is not an Optuna record followed by more lines (damage
  inside the journal), or a complete JSON line that is not an Optuna operation, is a one-line
  :class:`~pinnlab.core.errors.StoreError` naming the line and how to recover the records before it;
- a damaged *last* line (a write cut short by a full disk or a kill, garbage or NUL bytes at the
  end) is a cut tail: a command that writes cuts it (its bytes go to ``<journal>.damaged-<time>``
  first) with one notice line on stderr; a complete last record that only lacks its newline gets
  the newline.  Read-only commands change nothing: they read the complete records and say so;
- every append (:class:`GuardedJournalBackend`) checks the tail again under the journal's lock and
  writes with a plain ``write``: a write that fails (no space, file size limit) is cut back to the
  file's previous end and raised as one line, so the store keeps every record written before it;
- the lock (Optuna's symlink lock, ``<journal>.lock``) points at the absolute path and is released
  by force after :data:`LOCK_GRACE` seconds; a lock older than that at open, or one whose target is
  gone (Optuna's wait would spin on it forever), was left by a dead process and is removed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._storage import JournalOperation

from pinnlab.core.errors import StoreError, first_line

__all__ = ["open_journal", "scan_journal", "repair_tail", "GuardedJournalBackend", "LOCK_GRACE", "Tail"]

LOCK_GRACE = 10  # seconds a lock may be held: an append is one write and an fsync
LOCK_SUFFIX = ".lock"  # Optuna's name for the lock beside the journal
_OPS = frozenset(int(op) for op in JournalOperation)
_CHUNK = 1 << 16


def _kind(line: bytes) -> bool | None:
    """True: an Optuna operation record; False: JSON that is not one; None: not JSON at all (a line
    cut short, garbage or NUL bytes)."""
    try:
        value = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    op = value.get("op_code") if isinstance(value, dict) else None
    return type(op) is int and op in _OPS


def _notice(path: Path, message: str) -> None:
    print(f"pinnlab: notice: Optuna journal {str(path)!r}: {message}", file=sys.stderr, flush=True)


def _damaged(url: str, path: Path, line: int, what: str) -> StoreError:
    """The error for line ``line`` (1-based) being ``what``: the file is no journal when it is the
    first line, else the records before it are intact and can be kept."""
    if line == 1:
        return StoreError(
            StoreError.OPTUNA,
            url,
            f"{str(path)!r} is not an Optuna journal ({what} on line 1)",
            "give the journal the sweep used, or move that file away",
        )
    return StoreError(
        StoreError.OPTUNA,
        url,
        f"line {line} of {str(path)!r} is {what} (damage a repair of the last line cannot undo)",
        f"keep a copy, then recover the {line - 1} records before it: "
        f"head -n {line - 1} {path} > {path}.fixed and give journal:{path}.fixed",
    )


@dataclass(frozen=True)
class Tail:
    """A damaged last line: ``records`` complete records (``keep`` bytes) come before it."""

    records: int
    keep: int
    size: int
    complete: bool  # a complete record that only lacks its newline


def scan_journal(url: str, path: Path) -> Tail | None:
    """Check every line of an existing journal: None when all are complete Optuna records, a
    :class:`Tail` when only the last line is damaged; a StoreError for any other damage."""
    keep, records, last = 0, 0, None
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if last is not None:  # a damaged line with more after it: not a cut tail
                    raise _damaged(url, path, number - 1, "not an Optuna record, with more lines after it")
                kind = _kind(line)
                if kind and line.endswith(b"\n"):
                    keep += len(line)
                    records += 1
                    continue
                if kind is False:
                    raise _damaged(url, path, number, "JSON but not an Optuna operation")
                if number == 1 and kind is None and not line.startswith(b'{"op_code"'):
                    raise _damaged(url, path, 1, "not an Optuna record")
                last = (line, bool(kind))
    except OSError as exc:
        raise StoreError(StoreError.OPTUNA, url, f"cannot read it ({exc.strerror or exc})", "check the path") from None
    if last is None:
        return None
    return Tail(records=records, keep=keep, size=keep + len(last[0]), complete=last[1])


def _last_line(f, size: int) -> int:
    """The offset where the last line of an open binary file of ``size`` bytes starts."""
    end = size - 1  # a newline ending the file ends the last line, it does not start one
    while end > 0:
        start = max(0, end - _CHUNK)
        f.seek(start)
        cut = f.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def repair_tail(url: str, path: Path) -> str | None:
    """With the journal's lock held: end a complete last record with its missing newline, or cut a
    damaged last line after copying its bytes to ``<journal>.damaged-<time>``.  Returns what was done
    (None: the tail is sound); a StoreError when the copy cannot be written (nothing is cut then)."""
    try:
        with path.open("r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return None
            start = _last_line(f, size)
            f.seek(start)
            line = f.read()
            kind = _kind(line)
            if kind and line.endswith(b"\n"):
                return None
            if kind is False:
                raise StoreError(
                    StoreError.OPTUNA,
                    url,
                    f"the last line of {str(path)!r} is JSON but not an Optuna operation",
                    "give the journal the sweep used, or move that file away",
                )
            if kind:
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
                return "its last record lacked the newline that ends it: added"
            backup = _backup_name(path)
            with backup.open("xb") as b:
                b.write(line)
                b.flush()
                os.fsync(b.fileno())
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StoreError(
            StoreError.OPTUNA,
            url,
            f"cannot repair its damaged last line ({exc.strerror or exc})",
            "free space or fix permissions, then run the command again",
        ) from None
    return (
        f"cut a damaged last line ({len(line)} bytes, an interrupted write; copied to {backup.name}); "
        "every complete record is kept"
    )


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    backup = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        n += 1
    return backup


@contextmanager
def _locked(lock: JournalFileSymlinkLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _clear_stale_lock(url: str, path: Path) -> None:
    """Remove a lock left by a process that died holding it (see the module docstring)."""
    lock = Path(str(path) + LOCK_SUFFIX)
    try:
        st = lock.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(StoreError.OPTUNA, url, f"cannot check its lock {str(lock)!r} ({exc.strerror})") from None
    if lock.is_dir() and not lock.is_symlink():
        raise StoreError(
            StoreError.OPTUNA,
            url,
            f"{str(lock)!r} is a directory where the journal's lock goes",
            "remove it (no pinnlab or Optuna process makes one)",
        )
    age = time.time() - st.st_mtime
    if age < LOCK_GRACE and lock.exists():
        return  # held now: Optuna waits for it, and releases it by force after LOCK_GRACE
    try:
        JournalFileSymlinkLock(str(path)).release()
    except RuntimeError:  # released meanwhile
        return
    _notice(path, f"removed the lock {lock.name} left {age:.0f} s ago by a process that did not release it")


class GuardedJournalBackend(JournalFileBackend):
    """Optuna's file backend whose appends never glue a record onto a damaged tail and never
    leave a partial record behind (see the module docstring)."""

    def __init__(self, url: str, path: Path) -> None:
        self._url = url
        absolute = str(path.absolute())  # the lock is a symlink to this: a relative target dangles
        super().__init__(absolute, JournalFileSymlinkLock(absolute, grace_period=LOCK_GRACE))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        path = Path(self._file_path)
        with _locked(self._lock):
            done = repair_tail(self._url, path)
            if done:
                _notice(path, done)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                end = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError as exc:
                    try:  # leave the journal as it was before this write
                        os.ftruncate(fd, end)
                        os.fsync(fd)
                    except OSError:  # the next command that writes cuts the partial record
                        pass
                    raise StoreError(
                        StoreError.OPTUNA,
                        self._url,
                        f"cannot write to it ({exc.strerror or exc}); every record before this write is kept",
                        "free space (or raise the file size limit), then run the same command again",
                    ) from None
            finally:
                os.close(fd)


class _ReadOnlyBackend(JournalFileBackend):
    """Optuna's file backend for commands that only read: any append is a bug, never a write.
    ``keep``: read only the complete records of a journal whose last line is damaged (Optuna
    fails on some such lines: NUL or non-UTF-8 bytes are not a ``JSONDecodeError``)."""

    def __init__(self, path: str, keep: int | None) -> None:
        super().__init__(path)
        self._keep = keep

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        if self._keep is None:
            yield from super().read_logs(log_number_from)
            return
        with open(self._file_path, "rb") as f:
            lines = f.read(self._keep).splitlines()
        for line in lines[log_number_from:]:
            yield json.loads(line)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise RuntimeError(f"{self._file_path} was opened read-only")


def open_journal(url: str, path: Path, *, create: bool, read_only: bool) -> JournalStorage:
    """A JournalStorage on ``path`` after the checks of the module docstring.  ``create=False``:
    the file must exist; ``read_only``: nothing is written (no repair, no lock, no file)."""
    if path.is_dir():
        raise StoreError(StoreError.OPTUNA, url, f"{str(path)!r} is a directory", "name a journal file")
    if (not create or read_only) and not path.is_file():
        raise StoreError(
            StoreError.OPTUNA,
            url,
            f"no Optuna journal at {str(path)!r}",
            "run `pinnlab sweep FILE` first (in this directory, or with the same $PINNLAB_HOME), "
            "or give the storage the sweep used",
        )
    tail = scan_journal(url, path) if path.is_file() else None
    try:
        if read_only:
            if tail is not None:
                _notice(
                    path,
                    f"its last line is damaged or still being written; reading the {tail.records} "
                    "complete records before it (the next command that writes to it repairs it)",
                )
            backend: JournalFileBackend = _ReadOnlyBackend(str(path), None if tail is None else tail.keep)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _clear_stale_lock(url, path)
            backend = GuardedJournalBackend(url, path)
            if tail is not None:
                with _locked(backend._lock):  # the tail seen may have been a write in progress
                    done = repair_tail(url, path)
                if done:
                    _notice(path, done)
    except OSError as exc:
        raise StoreError(
            StoreError.OPTUNA,
            url,
            f"cannot open it ({exc.strerror or exc})",
            "give a journal path whose directory can be created and written",
        ) from None
    try:
        return JournalStorage(backend)
    except StoreError:
        raise
    except Exception as exc:  # a record with an operation's code but not its fields
        raise StoreError(
            StoreError.OPTUNA,
            url,
            f"cannot replay it ({type(exc).__name__}: {first_line(exc)})",
            "give the journal the sweep used, or move that file away",
        ) from None
