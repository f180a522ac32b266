"""MLflow tracking: one MLflow run per training run; a sweep's parent and child runs.

The only code of pinnlab that imports mlflow, in three roles:

* :mod:`~pinnlab.tracking.writer`  records runs: :class:`RunTracker` (a trainer callback), a
  study's parent run, tags, metrics and files of existing runs;
* :mod:`~pinnlab.tracking.admin`   closes runs of dead or stopped workers, checks that a worker can
  reach its study's parent run;
* :mod:`~pinnlab.tracking.reader`  reads back a sweep's child runs and a run's history (analysis);

on top of :mod:`~pinnlab.tracking.store` (the MLflow client, batched writes, store errors) and
:mod:`~pinnlab.tracking.uri` (where the stores are and how their URLs read; no mlflow).

Importing this package, or :mod:`pinnlab.tracking.uri`, does not import mlflow (~2 s): the names
below resolve on first use, so the sweep parent, the analysis and ``pinnlab --help`` stay light.
A store that cannot be opened or read raises :class:`pinnlab.core.errors.StoreError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "RunTracker",
    "default_store",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "artifact_root_for",
    "get_or_create_experiment",
    "start_parent_run",
    "end_run",
    "set_tags",
    "log_files",
    "log_metrics",
    "metric_key",
    "ui_command",
    "child_runs",
    "run_history",
    "check_parent_run",
    "close_runs",
]

_HOME = {
    "RunTracker": "writer",
    "start_parent_run": "writer",
    "end_run": "writer",
    "set_tags": "writer",
    "log_files": "writer",
    "log_metrics": "writer",
    "get_or_create_experiment": "store",
    "metric_key": "store",
    "child_runs": "reader",
    "run_history": "reader",
    "check_parent_run": "admin",
    "close_runs": "admin",
    "default_store": "uri",
    "default_tracking_uri": "uri",
    "resolve_tracking_uri": "uri",
    "artifact_root_for": "uri",
    "ui_command": "uri",
}

if TYPE_CHECKING:
    from pinnlab.tracking.admin import check_parent_run, close_runs
    from pinnlab.tracking.reader import child_runs, run_history
    from pinnlab.tracking.store import get_or_create_experiment, metric_key
    from pinnlab.tracking.uri import (
        artifact_root_for,
        default_store,
        default_tracking_uri,
        resolve_tracking_uri,
        ui_command,
    )
    from pinnlab.tracking.writer import RunTracker, end_run, log_files, log_metrics, set_tags, start_parent_run


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once resolved, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
