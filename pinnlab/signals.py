"""SIGTERM / SIGINT as a KeyboardInterrupt raised at a safe point, so work in progress is recorded
as stopped (MLflow run KILLED, Optuna trial FAIL) instead of being left RUNNING.

Python's default SIGINT handler, or a handler that raises at once, can interrupt any bytecode.
Inside ``deferred()`` (while a trainer or a sweep worker runs) the interrupt is raised at the next
check instead: a trainer callback (the handler is a duck-typed one, so that importing this module
stays TensorFlow-free), a sweep's per-trial callback, or an explicit :meth:`Terminate.check`.  An
exception raised by a signal handler in the middle of TensorFlow's tracing, or in a
garbage-collector callback, can be swallowed or turned into another error.  Later
signals are only recorded, so they cannot cut the cleanup short; SIGKILL remains the way to stop
a process that does not reach a check (a sweep worker's trial is then recovered by the storage's
heartbeat or ``pinnlab sweep --repair``, see :mod:`pinnlab.sweep.recovery`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence

__all__ = ["Terminate"]


class Terminate:
    """A signal handler that turns the first signal into ``KeyboardInterrupt("interrupted by SIGTERM")``."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.received: str | bool = False  # the first signal's name once one arrived
        self.deferring = False

    def __call__(self, signum, frame):
        first = not self.received
        if first:
            self.received = signal.Signals(signum).name
        if first and not self.deferring:
            raise KeyboardInterrupt(f"interrupted by {self.received}")

    def check(self, *_):
        """Raise the pending interrupt, if a signal arrived (any arguments are ignored)."""
        if self.received:
            raise KeyboardInterrupt(f"interrupted by {self.received}")

    on_train_begin = on_step = on_diagnostics = on_train_end = check

    @contextlib.contextmanager
    def deferred(self) -> Iterator[Terminate]:
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False
        self.check()

    @contextlib.contextmanager
    def installed(self, signums: Sequence[int] = (signal.SIGTERM,)) -> Iterator[Terminate]:
        """Handle ``signums`` with this object inside the block; the previous handlers after it.

        Outside the main thread (signal handlers can only be set there) this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in signums}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
