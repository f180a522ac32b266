"""Trials whose worker died or was stopped: marked FAIL, their MLflow runs closed, their slot retried.

How a trial loses its worker, and who notices
---------------------------------------------
* **SIGTERM / SIGINT** (a preempted job, Ctrl-C): the worker's :class:`~pinnlab.core.signals.Terminate`
  handler raises KeyboardInterrupt at the trainer's next step; the trial's ``RunTracker`` ends the
  MLflow run KILLED and ``study.optimize`` (Optuna 5.0: ``_run_trial`` catches KeyboardInterrupt,
  tells the trial FAIL and re-raises it) ends the trial FAIL.  The worker then calls
  :class:`TrialRecovery` itself and exits (``pinnlab worker``: code 130 and one line saying so).
* **SIGKILL, out of memory, a lost machine**, on an RDB storage: the trial stops sending heartbeats.
  Every live worker runs Optuna's ``fail_stale_trials`` before each trial, and every few seconds
  while it waits for the last trials of the study; a trial silent for the grace period is marked
  FAIL there and Optuna calls :class:`TrialRecovery` (the storage's
  ``heartbeat_stale_trial_callback``).  So a killed worker's trial is FAIL at most a grace period
  plus a poll after its last heartbeat, as long as one worker of the study is still alive; if none
  is, the next ``pinnlab worker`` or ``pinnlab sweep`` does it when it starts.
* The same on the **journal storage**: Optuna's JournalStorage has no heartbeat, so nothing can tell
  a dead worker from a slow one.  Each trial records its worker as ``host:pid`` (user attribute
  ``worker``); ``pinnlab sweep`` repairs the trials of its own worker processes that die, and
  ``pinnlab sweep FILE --repair`` repairs RUNNING trials whose worker is not a live process on this
  machine (see :func:`repair_trials`).  A journal shared by several machines (NFS) cannot be checked: run
  ``--repair`` there only when no worker of the study runs anywhere.

What recovery does (:class:`TrialRecovery`)
-------------------------------------------
1. Its slot is queued again, first (one storage write, the part that must not be lost if this
   process dies too; :func:`repair_trials` finishes a recovery cut short there): Optuna's
   ``RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)`` (``RetryFailedTrialCallback`` before
   Optuna 4.9) enqueues a WAITING copy with the same params and ``budget_slot``, plus ``retry_of``
   (the first trial of the slot) and ``retry_reason``; Optuna's system attributes
   ``failed_trial`` / ``retry_history`` link the chain.  The dead trial's results and run id are
   not copied.  After ``MAX_RETRY`` retries of one slot the last FAIL stays and counts: a
   configuration that kills its worker every time (e.g. out of memory) is a result too.  How
   retried trials count in the budget: :class:`pinnlab.sweep.study.Budget`.
2. The trial's MLflow runs (its ``mlflow_run_id``, and any RUNNING child of the study's parent run
   tagged with its number: a worker can die between creating the run and recording its id) get
   the tag ``pinnlab.closed_by`` (``heartbeat: ...``, ``SIGTERM: ...``, ``repair: ...``) and, if
   still RUNNING, the status KILLED.  A tracking store that cannot be reached is a warning, not a
   stop: :func:`close_orphan_runs` (run at ``--repair`` and when a sweep's budget is spent) closes
   any child run still RUNNING whose trial is not.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from pinnlab.core.keys import (
    CLOSED_TAG,
    MLFLOW_RUN_ID,
    PARENT_ATTR,
    SLOT_ATTR,
    SURPLUS_ATTR,
    TRACKING_ATTR,
    WORKER_ATTR,
)
from pinnlab.sweep.internals import retried_numbers, retry_count, retry_origin
from pinnlab.sweep.study import heartbeat_settings, uses_heartbeat
from pinnlab.tracking import child_runs, close_runs

__all__ = [
    "TrialRecovery",
    "repair_trials",
    "close_orphan_runs",
    "fail_stale",
    "worker_id",
    "MAX_RETRY",
    "WORKER_ATTR",
    "CLOSED_TAG",
]

log = logging.getLogger(__name__)

MAX_RETRY = 2  # a slot runs at most 3 times; a trial that kills its worker every time stays FAIL


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _retry_callback(max_retry: int):
    with warnings.catch_warnings():  # experimental in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
        except ImportError:  # Optuna < 4.9
            from optuna.storages import RetryFailedTrialCallback as Retry
        return Retry(max_retry=max_retry)


class TrialRecovery:
    """Called with a trial that ended FAIL because its worker died or was stopped.

    Optuna calls it as ``(study, trial)`` for heartbeat-stale trials; pinnlab passes ``reason``.
    ``tracking_uri``: how this process reaches the MLflow store (default: the URI the study was
    created with, study user attribute ``mlflow_tracking_uri``).
    """

    def __init__(self, tracking_uri: str | None = None, max_retry: int = MAX_RETRY):
        self.tracking_uri = tracking_uri
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial, reason: str | None = None) -> bool:
        """Queue the trial's slot again, then close its runs; returns whether a retry was queued."""
        if reason is None:
            grace = heartbeat_settings()[1]
            reason = (
                f"heartbeat: worker {trial.user_attrs.get(WORKER_ATTR, 'unknown')} stopped beating "
                f"(no heartbeat for {grace} s; noticed at {_now()} by {worker_id()})"
            )
        retried = self.retry(study, trial, reason)  # first: one storage write, the part that must not be lost
        self.close_runs(study, trial, reason)
        return retried

    def close_runs(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> list[str]:
        parent = study.user_attrs.get(PARENT_ATTR)
        run_id = trial.user_attrs.get(MLFLOW_RUN_ID)
        if parent is None and run_id is None:
            return []  # an untracked study
        uri = self.tracking_uri or study.user_attrs.get(TRACKING_ATTR)
        try:
            ids = [run_id] if run_id else []
            if parent is not None:
                ids += [
                    r["run_id"]
                    for r in child_runs(uri, parent, status="RUNNING")
                    if r["tags"].get("trial") == str(trial.number)
                ]
            return close_runs(uri, ids, {CLOSED_TAG: reason})
        except Exception as exc:  # the trial's state matters more; close_orphan_runs retries later
            log.warning("recovery: could not close the MLflow run of trial %d (%s)", trial.number, exc)
            return []

    def retry(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
        if retry_count(trial) >= self.max_retry:
            return False
        first = retry_origin(trial)
        clean = copy.deepcopy(trial)
        clean.user_attrs = {
            **{k: v for k, v in trial.user_attrs.items() if k == SLOT_ATTR},
            "retry_of": first,
            "retry_reason": reason,
        }
        _retry_callback(self.max_retry)(study, clean)
        return True


def fail_stale(study: optuna.Study) -> None:
    """Optuna's heartbeat check (RDB storages; nothing on the journal): RUNNING trials silent for the
    grace period become FAIL, and the storage's callback (a :class:`TrialRecovery`) is called."""
    with warnings.catch_warnings():  # experimental in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _alive_here(worker: str | None) -> bool | None:
    """Whether a ``host:pid`` worker is a live process: True/False on this host, None elsewhere."""
    if not worker or ":" not in worker:
        return None
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a killed worker whose parent died too can stay a zombie (not reaped): dead all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc: trust kill()
        return True


def repair_trials(
    study: optuna.Study,
    storage_url: str,
    recovery: TrialRecovery,
    dead_pids: Iterable[int] | None = None,
    dead_here_only: bool = False,
) -> list[int]:
    """FAIL and recover RUNNING trials whose worker is gone; returns their numbers.

    ``dead_here_only`` (a plain re-run of ``pinnlab sweep``): only RUNNING trials whose worker is
    a process of this host that no longer runs, which is certain without heartbeats or a grace
    period, so a re-run after a crash leaves nothing RUNNING without ``--repair``.

    ``dead_pids`` (the sweep that started those worker processes saw them die): the RUNNING trials
    of those processes on this host.  Otherwise (``pinnlab sweep --repair``): on an RDB storage,
    Optuna's heartbeat check, plus trials whose worker is a dead process on this host (no need to
    wait for the grace period); on the journal storage, every RUNNING trial whose worker is not a
    live process on this host; and on both, FAIL trials whose recovery was cut short.
    """
    host = socket.gethostname()
    repaired = []
    if dead_here_only:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get(WORKER_ATTR)
            frozen = _fail(study, trial) if _alive_here(worker) is False else None
            if frozen is not None:
                why = f"worker process {worker} is not running (seen by pinnlab sweep at {_now()})"
                recovery(study, frozen, reason=f"repair: {why}")
                repaired.append(trial.number)
        return repaired
    if dead_pids is None and uses_heartbeat(storage_url):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        fail_stale(study)
        now = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        repaired += sorted(before - now)
    if dead_pids is None:
        repaired += _finish_cut_short(study, recovery)
    dead = None if dead_pids is None else {f"{host}:{pid}" for pid in dead_pids}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if dead is not None:
            if worker not in dead:
                continue
            why = f"worker process {worker} died (exit seen by the sweep at {_now()})"
        else:
            alive = _alive_here(worker)
            if alive or (alive is None and uses_heartbeat(storage_url)):
                continue  # alive here, or elsewhere with heartbeats that will tell
            why = f"worker {worker or 'unknown'} is not running (pinnlab sweep --repair at {_now()} on {host})"
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # finished meanwhile (its worker, or another repair, got there first)
        recovery(study, frozen, reason=f"repair: {why}")
        repaired.append(trial.number)
    return repaired


def _fail(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial | None:
    """Tell a RUNNING trial FAIL; None when it finished meanwhile."""
    try:
        return study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        return None


def _finish_cut_short(study: optuna.Study, recovery: TrialRecovery) -> list[int]:
    """Recover FAIL trials whose recovery was cut short: the process that marked them FAIL died
    before it queued the retry (a window of one storage write).  Such a trial ran in a worker
    (``worker``) and has neither a result (``outcome``), nor an error (``error``), nor a retry."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    done = []
    for t in trials:
        attrs = t.user_attrs
        if (
            t.state == TrialState.FAIL
            and WORKER_ATTR in attrs
            and not {"outcome", "error", SURPLUS_ATTR} & attrs.keys()
            and t.number not in retried
            and retry_count(t) < recovery.max_retry
        ):
            recovery(study, t, reason=f"repair: trial {t.number} ended FAIL without a result or a retry ({_now()})")
            done.append(t.number)
    return done


def close_orphan_runs(study: optuna.Study, tracking_uri: str | None) -> list[str]:
    """Close (KILLED, tag ``pinnlab.closed_by``) every child run of the study's parent run that is
    RUNNING although its trial is not; returns their ids."""
    parent = study.user_attrs.get(PARENT_ATTR)
    if parent is None:
        return []

    uri = tracking_uri or study.user_attrs.get(TRACKING_ATTR)
    running = {str(t.number) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    states = {str(t.number): t.state.name for t in study.get_trials(deepcopy=False)}
    closed = []
    for run in child_runs(uri, parent, status="RUNNING"):
        trial = run["tags"].get("trial")
        if trial in running:
            continue
        reason = f"repair: trial {trial} is {states.get(trial, 'unknown')} in Optuna but its run was RUNNING ({_now()})"
        closed += close_runs(uri, [run["run_id"]], {CLOSED_TAG: reason})
    return closed
