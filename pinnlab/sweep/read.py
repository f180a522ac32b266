"""Read-only access to a study for analysis: its trials as plain Python data, no Optuna objects.

``pinnlab.analysis`` must not import optuna (only this package does), so everything it needs from a
study comes through :func:`read_study`: the spec the study was created with (``pinnlab_spec``), the
MLflow parent run id (``mlflow_parent_run_id``) and one :class:`TrialRecord` per trial.

Reading never creates anything: a journal file or a study that does not exist is a
:class:`~pinnlab.core.errors.ConfigError` naming what was looked for and which studies exist, instead of
the empty journal that opening a storage for writing would leave behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pinnlab.core.errors import ConfigError
from pinnlab.core.keys import PARENT_ATTR, SPEC_ATTR
from pinnlab.sweep.study import _load, budget_kinds, open_storage

__all__ = ["TrialRecord", "StudyRecord", "read_study"]


@dataclass(frozen=True)
class TrialRecord:
    """One trial: Optuna's state (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``),
    its params by dotted config path, its objective value (None unless COMPLETE) and user attrs
    (``outcome``, ``nan_onset_step``, ``mlflow_run_id``, ...)."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    user_attrs: dict[str, Any]
    intermediate_values: dict[int, float] = field(default_factory=dict)
    duration_seconds: float | None = None
    # how the budget counts it (pinnlab.sweep.study.budget_kinds): "done", "running", "waiting",
    # "retried" (a FAIL of a dead or stopped worker, run again) or "surplus" (never trained)
    kind: str = "done"


@dataclass(frozen=True)
class StudyRecord:
    name: str
    storage: str
    direction: str  # "minimize" or "maximize"
    spec: dict[str, Any] | None  # the SweepSpec as a dict (None for a study not made by pinnlab)
    parent_run_id: str | None
    trials: list[TrialRecord]


def read_study(study_name: str, storage_url: str) -> StudyRecord:
    """Every trial of ``study_name`` in ``storage_url`` (see :func:`pinnlab.sweep.study.open_storage`)."""
    storage = open_storage(storage_url, create=False, read_only=True)
    try:
        study = _load(study_name, storage, storage_url)
    except ConfigError as exc:
        raise ConfigError("STUDY" if exc.field == "--study-name" else exc.field, exc.message) from None
    trials = []
    frozen = study.get_trials(deepcopy=False)
    for t, kind in zip(frozen, budget_kinds(frozen)):
        duration = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            duration = (t.datetime_complete - t.datetime_start).total_seconds()
        trials.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                value=t.value if t.state.name == "COMPLETE" else None,
                user_attrs=dict(t.user_attrs),
                intermediate_values=dict(t.intermediate_values),
                duration_seconds=duration,
                kind=kind,
            )
        )
    attrs = study.user_attrs
    return StudyRecord(
        name=study_name,
        storage=storage_url,
        direction=study.direction.name.lower(),
        spec=attrs.get(SPEC_ATTR),
        parent_run_id=attrs.get(PARENT_ATTR),
        trials=trials,
    )
