"""How a sweep and its workers stop: a signal (the stopped trial FAIL, its MLflow run KILLED, its
slot queued again, in one line instead of Optuna's warnings and tracebacks), the stop watchdog's
actions (:func:`pinnlab.core.signals.on_abort`), and a storage that stops answering (one line naming it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from pinnlab.core.keys import MLFLOW_RUN_ID, WORKER_ATTR
from pinnlab.core.signals import stop_grace
from pinnlab.sweep.recovery import worker_id
from pinnlab.sweep.study import StorageLost, lost_storage_error, storage_lost
from pinnlab.tracking import end_run

__all__ = ["lost_storage_is_one_line", "quiet_lost_threads", "QuietStop", "stopped", "abandon", "kill_parent"]


@contextlib.contextmanager
def lost_storage_is_one_line(storage: str) -> Iterator[None]:
    """Raise :class:`~pinnlab.sweep.study.StorageLost` (one line) for an error that means the
    storage stopped answering; any other error passes unchanged."""
    try:
        yield
    except StorageLost:
        raise
    except Exception as exc:
        root = storage_lost(exc)
        if root is not None:
            raise lost_storage_error(storage, root) from None
        raise


@contextlib.contextmanager
def quiet_lost_threads() -> Iterator[None]:
    """Optuna's heartbeat thread dies with a traceback when the storage stops answering; the
    worker tells the loss in one line when its trial ends (Optuna's tell fails then), so the
    thread's traceback is dropped.  Any other thread's error is printed as before."""
    previous = threading.excepthook

    def hook(args) -> None:
        if args.exc_value is None or storage_lost(args.exc_value) is None:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


class QuietStop:
    """Logging filter on Optuna's handlers: drop Optuna's own account ("Trial 3 failed with
    parameters: … because of …" with its traceback, then "Trial 3 failed with value None.") of a
    trial that ended by one of ``told`` (a stop, which the worker tells in one line; a surplus
    trial, which the sweep summary counts apart), and every warning once a signal arrived."""

    def __init__(self, terminate, told: tuple[type[BaseException], ...]):
        self.terminate = terminate
        self.told = told
        self.trial: str | None = None  # the number of the trial whose account is being dropped

    def filter(self, record) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.told):
            self.trial = record.getMessage().split(" ", 2)[1]
            return False
        if self.trial is not None and record.getMessage().startswith(f"Trial {self.trial} failed with value"):
            self.trial = None
            return False
        return not (self.terminate.received and record.levelno <= logging.WARNING)


def _mine(study) -> list:
    """The trials this process took (user attribute ``worker``), for the account of a stop."""

    me = worker_id()
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(WORKER_ATTR) == me]


def stopped(study, objective, recovery, signal_text: str) -> str:
    """Recover the trial a signal stopped; the one-line account of what happened."""
    from optuna.trial import TrialState

    numbers = objective.interrupted
    numbers = [] if numbers is None else [numbers] if isinstance(numbers, int) else list(numbers)
    finished = sum(t.state.is_finished() and t.number not in numbers for t in _mine(study))
    if not numbers:
        return f"{signal_text} between trials; this worker finished {finished}"
    said = []
    for number in numbers:  # one trial, or the unfinished trials of a batch
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == TrialState.RUNNING:  # Optuna tells FAIL before re-raising; in case it did not
            trial = study.tell(number, state=TrialState.FAIL)
        retried = _retry(study, recovery, trial, signal_text.rsplit(" ", 1)[-1])
        run = " and its MLflow run KILLED" if trial.user_attrs.get(MLFLOW_RUN_ID) else ""
        again = "queued again" if retried else "not retried (retry limit reached)"
        said.append(f"trial {number} ended FAIL{run}, its slot {again}")
    return f"{signal_text}: {'; '.join(said)}; this worker finished {finished}"


def _retry(study, recovery, trial, signal_name: str) -> bool:
    """Recover a trial a signal stopped (FAIL, MLflow run KILLED, queued again); whether it was."""

    return recovery(study, trial, reason=f"{signal_name}: worker {worker_id()} was stopped during the trial")


def abandon(study, recovery, signal_name) -> str | None:
    """The stop watchdog's action (:func:`pinnlab.core.signals.on_abort`): this worker's RUNNING trials
    end FAIL and are queued again, while the main thread is still inside a step."""
    from optuna.trial import TrialState

    said = []
    for trial in _mine(study):
        if trial.state == TrialState.RUNNING:
            trial = study.tell(trial.number, state=TrialState.FAIL)
            retried = _retry(study, recovery, trial, signal_name)
            said.append(f"trial {trial.number} ended FAIL, its slot {'queued again' if retried else 'not retried'}")
    return "; ".join(said) or None


def kill_parent(once, tracking_uri, parent) -> str | None:
    """The stop watchdog's action in the sweep process: the parent run ends KILLED, unless the
    sweep ended it itself (``once``: :class:`pinnlab.core.signals.Once`)."""

    if parent is None or not once(lambda: end_run(tracking_uri, parent, "KILLED"), timeout=stop_grace()):
        return None
    return f"MLflow parent run {parent} KILLED"
