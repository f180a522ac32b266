"""SIGTERM / SIGINT as a KeyboardInterrupt raised at a safe point, so work in progress is recorded
as stopped (MLflow run KILLED, Optuna trial FAIL) instead of being left RUNNING.

Python's default SIGINT handler, or a handler that raises at once, can interrupt any bytecode: a
write to MLflow's database half done, TensorFlow's tracing, a garbage-collector callback.  Inside
``deferred()`` (the CLI's writing commands, a trainer, a sweep worker) a signal is only recorded
and the interrupt is raised at the next check instead: a trainer callback (the handler is a
duck-typed one, so that importing this module stays TensorFlow-free), a sweep's per-trial
callback, :meth:`Terminate.check` or :func:`checkpoint`.

A check can be far away: one training step can take minutes, and the Python-level handler itself
does not run while the main thread is inside TensorFlow's C++ code.  So ``installed()`` also
starts a watchdog thread that learns of each signal through :func:`signal.set_wakeup_fd` (written
by the C-level handler, whatever the main thread does).  If no check is reached within
:data:`STOP_GRACE` seconds of the first signal while work that can be abandoned is open (a
registered abort action: :func:`on_abort`), or at once on a second signal, the watchdog runs the
abort actions (a tracked run ends KILLED, a sweep worker's trial FAIL), prints one line and exits
the process with code 130.  Without open work (start-up: imports, a store being created, a study
being written) the first signal waits for the next check, so no store is cut off mid-write by the
grace.  An abort action and the main thread's own cleanup must agree on who writes the final
state (see ``RunTracker.end``'s lock).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

__all__ = ["Terminate", "Once", "STOP_GRACE", "stop_grace", "on_abort", "checkpoint", "current"]

STOP_GRACE = 5.0  # seconds from the first signal to a check before the watchdog stops the process
GRACE_ENV = "PINNLAB_STOP_GRACE"  # overrides STOP_GRACE (seconds, > 0)
INTERRUPTED = 130
# the same signal again within this many seconds is one stop delivered twice (`timeout` and some
# supervisors signal both the process and its group), not a second Ctrl-C
SAME_DELIVERY = 0.1

_abort_lock = threading.Lock()
_abort_actions: dict[int, Callable[[], str | None]] = {}
_next_token = iter(range(1, sys.maxsize))
_current: list[Terminate] = []  # the installed handlers, innermost last


def stop_grace() -> float:
    """:data:`STOP_GRACE`, or ``$PINNLAB_STOP_GRACE`` when it is a positive finite number."""
    try:
        value = float(os.environ.get(GRACE_ENV, ""))
    except ValueError:
        return STOP_GRACE
    return value if 0 < value < math.inf else STOP_GRACE


@contextlib.contextmanager
def on_abort(action: Callable[[], str | None]) -> Iterator[None]:
    """Register ``action`` for the block: the watchdog calls it (latest first) before it exits the
    process; it returns an optional account for the stop line.  It runs on the watchdog thread
    while the main thread may be anywhere, so it must be safe against the main thread's cleanup."""
    with _abort_lock:
        token = next(_next_token)
        _abort_actions[token] = action
    try:
        yield
    finally:
        with _abort_lock:
            _abort_actions.pop(token, None)


def checkpoint() -> None:
    """A safe point: raise the pending interrupt of the installed handler, if there is one."""
    if _current:
        _current[-1].check()


class Once:
    """The first of the actions given to it runs, under a lock; a later one waits for it (at most
    ``timeout`` seconds) and does nothing: the stop watchdog's KILLED and the main thread's own end
    of a record never both write a final state."""

    def __init__(self):
        self._lock = threading.Lock()
        self.done = False

    def __call__(self, action: Callable[[], object], timeout: float = -1) -> bool:
        """Run ``action`` if nothing ran yet; whether it ran."""
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            if self.done:
                return False
            self.done = True
            action()
            return True
        finally:
            self._lock.release()


def current() -> Terminate | None:
    """The installed :class:`Terminate` (the CLI's, a sweep worker process's), if any: code that
    stops at safe points shares it instead of installing a second one."""
    return _current[-1] if _current else None


class Terminate:
    """A signal handler that turns the first signal into ``KeyboardInterrupt("interrupted by SIGTERM")``."""

    def __init__(self, label: str = "pinnlab"):
        self.label = label  # the start of the watchdog's stop line, e.g. "pinnlab run"
        self.reset()

    def reset(self) -> None:
        self.received: str | bool = False  # the first signal's name once one arrived
        self.depth = 0  # nesting of deferred() blocks
        self.stopping = False  # the interrupt was raised: the main thread is cleaning up

    @property
    def deferring(self) -> bool:
        return self.depth > 0

    @deferring.setter
    def deferring(self, value: bool) -> None:
        self.depth = int(value)

    def __call__(self, signum, frame):
        first = not self.received
        if first:
            self.received = signal.Signals(signum).name
        if first and not self.deferring:
            self.stopping = True
            raise KeyboardInterrupt(f"interrupted by {self.received}")

    def check(self, *_):
        """Raise the pending interrupt, if a signal arrived (any arguments are ignored)."""
        if self.received:
            self.stopping = True
            raise KeyboardInterrupt(f"interrupted by {self.received}")

    on_train_begin = on_step = on_diagnostics = on_train_end = check

    @contextlib.contextmanager
    def deferred(self) -> Iterator[Terminate]:
        """Signals are only recorded inside the block (nested blocks too); the pending interrupt is
        raised at the next check, at the latest when the outermost block ends."""
        self.depth += 1
        try:
            yield self
        finally:
            self.depth -= 1
        self.check()

    @contextlib.contextmanager
    def installed(self, signums: Sequence[int] = (signal.SIGTERM,)) -> Iterator[Terminate]:
        """Handle ``signums`` with this object inside the block, with the watchdog; the previous
        handlers after it.

        Outside the main thread (signal handlers can only be set there), or when this object is
        already installed, this does nothing.
        """
        if threading.current_thread() is not threading.main_thread() or self in _current:
            yield self
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        err_fd = os.dup(2)  # the stop line reaches this stderr even while fd 2 is redirected (TF's import)
        previous = {s: signal.signal(s, self) for s in signums}
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        watchdog = threading.Thread(
            target=self._watch,
            args=(read_fd, {int(s) for s in signums}, err_fd),
            name="pinnlab-stop-watchdog",
            daemon=True,
        )
        watchdog.start()
        _current.append(self)
        try:
            yield self
        finally:
            _current.remove(self)
            signal.set_wakeup_fd(old_fd)
            os.write(write_fd, b"\0")  # 0 is no signal: tells the watchdog to end
            watchdog.join()
            for fd in (read_fd, write_fd, err_fd):
                os.close(fd)
            for s, h in previous.items():
                signal.signal(s, signal.SIG_DFL if h is None else h)

    # ------------------------------------------------------------------ the watchdog thread
    def _watch(self, read_fd: int, signums: set[int], err_fd: int) -> None:
        """Count the signals written to ``read_fd``; abort the process when the first one is not
        followed by a check within the grace, or when a second one comes."""
        signal.pthread_sigmask(signal.SIG_BLOCK, signums)  # signals go to the main thread's handler
        seen: list[str] = []
        first_at = 0.0
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([read_fd], [], [], timeout)
            if not ready:  # the grace passed
                with _abort_lock:
                    open_work = bool(_abort_actions)
                if not self.stopping and open_work:
                    self._abort(seen[0], f"no safe point within {stop_grace():g} s", err_fd)
                # nothing to abandon yet: look again shortly, until a check or open work comes
                deadline = None if self.stopping else time.monotonic() + 0.5
                continue
            data = os.read(read_fd, 64)
            if 0 in data:
                return
            for number in data:
                name = signal.Signals(number).name if number in signums else None
                if name is None or (seen and name == seen[0] and time.monotonic() - first_at < SAME_DELIVERY):
                    continue
                seen.append(name)
                if len(seen) == 1:
                    first_at = time.monotonic()
                    deadline = first_at + stop_grace()
                else:
                    self._abort(seen[0], f"{seen[-1]} again", err_fd)

    def _abort(self, name: str, why: str, err_fd: int) -> None:
        """Run the abort actions, print one line, exit 130 (never returns)."""
        with _abort_lock:
            actions = list(_abort_actions.values())[::-1]
        said = []
        for action in actions:
            try:
                text = action()
            except Exception as exc:  # anything: the process must still end
                text = f"{type(exc).__name__} while stopping: {exc}"
            if text:
                said.append(text)
        extra = f"; {'; '.join(said)}" if said else ""
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
        newline = "\n" if getattr(tqdm, "_instances", None) else ""  # a progress bar holds the line
        with contextlib.suppress(OSError):
            os.write(err_fd, f"{newline}{self.label}: interrupted by {name} ({why}: stopped at once){extra}\n".encode())
        os._exit(INTERRUPTED)
