"""The few Optuna internals pinnlab reads, behind one small adapter.

Optuna's retry machinery (``RetryHeartbeatStaleTrialCallback``) links a failed trial and its
re-run through *system* attributes that are not public API: ``failed_trial`` (the first trial of a
chain) and ``retry_history`` (the numbers of the failed trials before it).  ``enqueue_trial`` keeps
the queued parameters in ``fixed_params``.  Should Optuna rename them, this module is the one place
to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optuna.trial import FrozenTrial

__all__ = ["retried_numbers", "retry_count", "retry_origin", "fixed_params"]

_RETRY_HISTORY = "retry_history"
_FAILED_TRIAL = "failed_trial"
_FIXED_PARAMS = "fixed_params"


def retry_count(trial: FrozenTrial) -> int:
    """How many failed trials precede this one in its retry chain."""
    return len(trial.system_attrs.get(_RETRY_HISTORY, ()))


def retry_origin(trial: FrozenTrial) -> int:
    """The number of the first trial of this trial's retry chain (its own number if none)."""
    return trial.system_attrs.get(_FAILED_TRIAL, trial.number)


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials that were run again (they appear in some trial's retry history)."""
    return {n for t in trials for n in t.system_attrs.get(_RETRY_HISTORY, ())}


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters a queued (enqueued) trial was given, before it runs."""
    return trial.system_attrs.get(_FIXED_PARAMS, {})
