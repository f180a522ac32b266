"""Store administration for sweeps: check that a worker can reach its study's parent run, and close
the runs of dead or stopped processes (:mod:`pinnlab.sweep.recovery`, ``pinnlab sweep --repair``).

A process killed by SIGKILL leaves its MLflow run RUNNING forever; whoever notices (a live worker
through Optuna's heartbeat, the sweep that started the worker, a repair) tags it with why
(:data:`pinnlab.core.keys.CLOSED_TAG`) and ends it with :func:`close_runs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pinnlab.tracking.reader import parent_run
from pinnlab.tracking.store import check_status, client, log_params_and_tags, set_terminated

__all__ = ["check_parent_run", "close_runs"]


def check_parent_run(tracking_uri: str | None, parent_run_id: str) -> None:
    """Fail early, as one line (a StoreError), when a worker cannot reach the store or its study's
    parent run."""
    parent_run(tracking_uri, parent_run_id)


def close_runs(
    tracking_uri: str | None, run_ids: Iterable[str], tags: Mapping[str, Any], status: str = "KILLED"
) -> list[str]:
    """Tag runs left behind by a dead or stopped process and end the RUNNING ones with ``status``.

    A run that already ended keeps its status (a worker that died after its trial's run finished
    produced a result; only the tags say what happened to the trial).  Returns the ids it ended.
    """
    check_status(status)
    c = client(tracking_uri)
    ended = []
    for run_id in dict.fromkeys(run_ids):
        log_params_and_tags(c, run_id, tags=tags)
        if c.get_run(run_id).info.status == "RUNNING":
            set_terminated(c, run_id, status)
            ended.append(run_id)
    return ended
