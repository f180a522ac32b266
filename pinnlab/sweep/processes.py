"""The local worker processes of ``pinnlab sweep``: started, watched, and never left orphaned.

``run_processes`` spawns the workers (each joins the study through the storage like a worker on
another machine, :func:`pinnlab.sweep.runner.run_worker`) and draws the progress line while they
run.  A worker that dies has its RUNNING trials repaired at once (the journal has no heartbeat).
A worker whose sweep dies (Ctrl-C is handled; SIGKILL, out of memory, a closed terminal are not)
stops by itself (:func:`_die_with_parent`), so no worker outlives its sweep unsupervised and a
re-run of the same command finds every trial of the dead sweep ended or repairable.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from pinnlab.backend import quiet_process
from pinnlab.core.errors import PinnlabError, first_line
from pinnlab.core.outcomes import Outcome
from pinnlab.core.signals import Terminate, checkpoint, on_abort, stop_grace
from pinnlab.sweep.recovery import repair_trials
from pinnlab.sweep.study import StorageLost, budget_kinds

__all__ = ["run_processes", "ORPHAN_GRACE"]


ORPHAN_GRACE = 10  # seconds an orphaned worker has to stop cleanly before it exits outright
STORAGE_LOST_EXIT = 75  # a local worker whose storage stopped answering (EX_TEMPFAIL); silent


def _die_with_parent(parent_pid: int) -> None:
    """Stop this process when the sweep that started it dies (even by SIGKILL), so that no worker
    runs unsupervised.

    First SIGTERM, which the worker's handler turns into a clean stop at the trainer's next step
    (trial FAIL, run KILLED, slot queued again): on Linux through ``prctl(PR_SET_PDEATHSIG)`` at
    once, elsewhere from a thread that polls the parent's pid every second.  A step can be far away
    (a trace being compiled, TensorFlow still starting): the stop watchdog of
    :mod:`pinnlab.core.signals` ends a trial in progress after its grace (trial FAIL, run KILLED); if
    the process still runs :data:`ORPHAN_GRACE` seconds later it exits outright, and a trial it
    leaves RUNNING is repaired by the next ``pinnlab sweep`` (its worker is a dead process of this
    machine).  A parent already
    gone before this is set up is noticed at once (our parent pid changed).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        if not armed:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE)
        print(
            f"pinnlab sweep: worker pid {os.getpid()}: the sweep died and the trial did not stop "
            f"within {ORPHAN_GRACE} s; exiting (the next `pinnlab sweep` repairs the trial)",
            file=sys.stderr,
        )
        os._exit(137)

    threading.Thread(target=watch, name="pinnlab-parent-watch", daemon=True).start()


def _worker_entry(run_worker, kwargs: dict, parent_pid: int | None = None) -> None:
    """A local worker process: one line and exit code 130 when stopped by a signal, 2 on bad input,
    1 (one line) on anything unexpected.  Its TensorFlow and Optuna start quietly as in every
    pinnlab process (:func:`pinnlab.backend.quiet_process`; the environment, MLflow's log level
    included, is the sweep's).  ``run_worker``: :func:`pinnlab.sweep.runner.run_worker`, passed in
    (pickled by name) so that this module does not import the runner that imports it."""

    quiet_process()

    who = f"pinnlab sweep: worker {kwargs.get('worker', 0)}"
    _accept_sigint()
    term = Terminate(label=who)
    try:
        with term.installed([signal.SIGTERM, signal.SIGINT]), term.deferred():  # a stop during start-up, too
            if parent_pid is not None:
                _die_with_parent(parent_pid)
            run_worker(**kwargs)
    except KeyboardInterrupt as exc:
        _exit(f"{who}: {exc}", 130)
    except StorageLost:  # the sweep watches the same storage and says so in one line, once
        sys.stderr.flush()
        os._exit(STORAGE_LOST_EXIT)
    except PinnlabError as exc:
        _exit(f"{who}: error: {exc}", 2)
    except Exception as exc:  # the study goes on with the other workers; the parent repairs the trial
        _exit(f"{who}: internal error: {type(exc).__name__}: {first_line(exc)}", 1)


def _accept_sigint() -> None:
    """The worker started with SIGINT ignored and blocked (:func:`_spawn_without_sigint`):
    unblocked while still ignored, one that came during start-up is dropped (the sweep stops this
    worker with SIGTERM if it does not end by itself, see :func:`run_processes`)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _spawn_without_sigint() -> Iterator[None]:
    """Processes started in the block begin with SIGINT ignored (an ignored disposition survives
    exec and Python keeps it), so a Ctrl-C during their start-up, before they have a handler, shows
    no traceback.  SIGINT is blocked here meanwhile (Linux keeps a blocked signal pending even when
    ignored), so one meant for the sweep is delivered after the block, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stop_workers(procs) -> str | None:
    """The stop watchdog's action in the sweep process: each live worker gets a SIGTERM (after
    the first stop, its second: it ends its run KILLED and its trial FAIL at once) and a moment to
    exit."""
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + stop_grace()
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
    return f"{len(alive)} workers stopped" if alive else None


def _exit(line: str, code: int) -> None:
    """Print the worker's one line and exit at once.  Its trial and runs are already recorded
    (every write is synchronous); the interpreter's teardown with TensorFlow loaded took seconds
    more on a busy machine, which an orphaned worker must not spend."""
    print(line, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)


def run_processes(
    study, spec, storage, tracking_uri, track, workers, done, progress, poll_seconds, recovery, run_worker
):
    """Start ``workers`` spawned processes; watch until they end."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        kwargs = dict(
            study_name=spec.study_name,
            storage=storage,
            tracking_uri=tracking_uri,
            worker=i,
            threads=threads,
            track=track,
        )
        p = ctx.Process(
            target=_worker_entry, args=(run_worker, kwargs, os.getpid()), name=f"pinnlab-worker-{i}", daemon=False
        )
        with _spawn_without_sigint():
            p.start()
        procs.append(p)
    try:
        with on_abort(lambda: _stop_workers(procs)):
            _watch(study, spec, storage, procs, done, progress, poll_seconds, recovery)
    except BaseException as exc:  # Ctrl-C, or the storage lost: no worker runs on unwatched
        if isinstance(exc, KeyboardInterrupt):
            # a Ctrl-C reached the whole process group: the workers stop by themselves; a SIGTERM
            # now would be their second signal, which stops them at once (pinnlab.core.signals)
            deadline = time.monotonic() + stop_grace()
            while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
                time.sleep(0.1)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        raise


def _watch(study, spec, storage, procs, done_before, progress, poll_seconds, recovery) -> None:
    """Poll the storage while the workers run; one live progress line on stderr.  A worker process
    killed by a signal has its RUNNING trials repaired at once (the journal has no heartbeat)."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=spec.n_trials,
        initial=done_before,
        desc=spec.study_name,
        unit="trial",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    last = done_before
    seen_dead: set[int] = set()
    while True:
        alive = any(p.is_alive() for p in procs)
        # 0: done; 130: stopped by a signal, recovered its own trial; anything else left it RUNNING
        dead = [p.pid for p in procs if p.exitcode not in (None, 0, 130) and p.pid not in seen_dead]
        if dead:
            seen_dead.update(dead)
            repair_trials(study, storage, recovery, dead_pids=dead)
        trials = study.get_trials(deepcopy=False)
        counted = [t for t, kind in zip(trials, budget_kinds(trials)) if kind == "done"]
        n = len(counted)
        if n != last:
            bar.update(n - last)
            last = n
            outcomes = [Outcome.parse(t.user_attrs.get("outcome")) for t in counted]
            divergent = sum(o is not None and o.divergent for o in outcomes)
            stable = sum(o is not None and o.judged and not o.divergent for o in outcomes)
            crashed = sum(t.state.name == "FAIL" for t in counted)
            completed = [t.value for t in counted if t.state.name == "COMPLETE" and t.value is not None]
            best = (min if spec.objective.direction == "minimize" else max)(completed) if completed else None
            bar.set_postfix_str(
                f"stable {stable} | divergent {divergent}"
                + (f" | failed {crashed}" if crashed else "")
                + ("" if best is None else f" | best {best:.3g}")
            )
        try:
            checkpoint()  # a stop of the sweep (also one the workers ended on): run_processes stops them
        except KeyboardInterrupt:
            bar.close()  # its last state on a line of its own, before the stop is told
            raise
        if not alive:
            break
        time.sleep(poll_seconds)
    for p in procs:
        p.join()
    bar.close()
    codes = [p.exitcode for p in procs]
    if any(c != 0 for c in codes):
        print(f"pinnlab sweep: warning: worker exit codes {codes}", file=sys.stderr)
