"""Work that follows a run but need not hold up the next one: the PNG plots of a tracked run.

Why: drawing and uploading a run's plots takes ~1 s (matplotlib), as long as a 50-step sweep trial
trains.  With ``background_plots`` the :class:`~pinnlab.tracking.writer.RunTracker` logs the
history, metrics and tags synchronously (the result is recorded when the run ends) and hands the
plots to one background thread, which draws them while the next trial trains; the artifacts land
under ``plots/`` of the same MLflow run a moment later.  One thread, so plots are drawn one at a
time (pyplot is not thread-safe) and in order.

The thread is not a daemon: the interpreter waits for queued plots at exit (``concurrent.futures``
joins its workers then), so ``pinnlab run`` prints its summary first and the process ends once the
plots are logged.  :func:`wait` does the same on demand (tests, notebooks).  A process killed
with SIGKILL loses its queued plots; the history is already logged, and ``pinnlab.plots`` draws
them again from it.  Alternatives: docs/design.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["submit", "wait"]

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pending: list[Future] = []


def submit(fn: Callable[[], None]) -> Future:
    """Run ``fn()`` on the background thread (made on first use)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinnlab-plots")
        future = _executor.submit(fn)
        _pending[:] = [f for f in _pending if not f.done()] + [future]
    return future


def wait() -> None:
    """Block until every submitted job has finished (their exceptions are the jobs' own business)."""
    with _lock:
        pending = list(_pending)
    for f in pending:
        f.exception()
