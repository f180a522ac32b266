"""The summary of a run: one definition of the fields of ``pinnlab run --json``.

Every consumer reads this table instead of keeping its own list: :meth:`RunResult.summary` builds
the dict in this order; the MLflow writer logs the numeric fields as ``summary/<name>`` metrics and
the fields marked ``tag`` as run tags; a sweep copies the ``trial_attr`` fields to each trial's user
attributes; the analysis frames turn the same fields into columns; a sweep's objective may be any
``objective`` field (or a history metric).  Adding a field here adds it everywhere.

TensorFlow-free (imported by the sweep parent and the analysis).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SummaryField",
    "SUMMARY_FIELDS",
    "FIELD",
    "TRIAL_ATTRS",
    "TAG_FIELDS",
    "OBJECTIVE_METRICS",
    "INT_FIELDS",
    "NUMERIC_FIELDS",
]


@dataclass(frozen=True)
class SummaryField:
    name: str
    kind: type  # int, float, str, list or dict (the JSON type; None is always allowed)
    meaning: str
    trial_attr: bool = True  # copied to a sweep trial's user attributes and the trials frame
    tag: bool = False  # an MLflow run tag (strings and steps a user filters runs by)
    objective: bool = False  # a sweep may be judged by it

    @property
    def numeric(self) -> bool:
        return self.kind in (int, float)


SUMMARY_FIELDS: tuple[SummaryField, ...] = (
    SummaryField("outcome", str, "the outcome class (pinnlab.core.outcomes.Outcome)", tag=True),
    SummaryField("reason", str, "the rule that fired, with its numbers", tag=True),
    SummaryField("nan_onset_step", int, "step whose update first went non-finite (null if none)", tag=True),
    SummaryField("first_nonfinite", str, "the first non-finite tensor of that step, in computation order", tag=True),
    SummaryField("divergence_step", int, "step at which a divergence rule fired (null if none)", tag=True),
    SummaryField("steps_run", int, "steps trained (rows of the history)", objective=True),
    SummaryField("steps_budget", int, "steps the config asked for"),
    SummaryField("wall_seconds", float, "wall time of the training loop", objective=True),
    SummaryField("compile_seconds", float, "time of the first (tracing) step"),
    SummaryField("initial_loss", float, "total loss at step 0", trial_attr=False),
    SummaryField("final_loss", float, "last finite total loss", objective=True),
    SummaryField("weight_norm_initial", float, "global weight norm at step 0"),
    SummaryField("weight_norm_final", float, "global weight norm of the final (last finite) weights"),
    SummaryField("weight_norm_ratio", float, "weight_norm_final / weight_norm_initial", objective=True),
    SummaryField(
        "rel_l2_error",
        float,
        "relative L2 error on the evaluation grid (null without an exact solution)",
        objective=True,
    ),
    SummaryField("heldout_ratio", float, "held-out / training mean square PDE residual", objective=True),
    SummaryField("heldout_residual", float, "mean square PDE residual on held-out points", objective=True),
    SummaryField("stopped_by", str, "a callback that ended the run early (e.g. a sweep pruner)", tag=True),
    SummaryField(
        "forecast",
        dict,
        "the first forecast alarm: {first_alarm_step, signal, value} (nulls if none)",
        trial_attr=False,
    ),
    SummaryField("alarm_step", int, "step of the first forecast alarm (null if none)", tag=True, objective=True),
    SummaryField(
        "alarm_signal", str, "the signal that raised it (sharpness, weight_growth, unbounded_loss, ...)", tag=True
    ),
    SummaryField("causes", list, "likely causes of a failure: [{cause, evidence, remedy}] (pinnlab.training.causes)"),
    SummaryField("cause_names", str, "the causes' names, comma-separated", tag=True),
    SummaryField("risks", list, "the same rules holding on a run that worked: [{cause, evidence, remedy}]"),
    SummaryField("risk_names", str, "the risks' names, comma-separated", tag=True),
    SummaryField("known_causes", str, "causes known from the config before training, comma-separated", tag=True),
    SummaryField("warnings", list, "known causes of trouble found in the config and the run", trial_attr=False),
    SummaryField("problem", str, "problem.name", trial_attr=False),
    SummaryField("final_metrics", dict, "the last finite value of every history metric", trial_attr=False),
    SummaryField(
        "divergence_rate", float, "fraction of the seed replicates that diverged (one run: 0 or 1)", objective=True
    ),
    SummaryField(
        "replicates",
        list,
        "training.replicates > 1: per seed outcome, onsets, final loss, error "
        "(null for one run; the fields above summarise them)",
        trial_attr=False,
    ),
)

FIELD = {f.name: f for f in SUMMARY_FIELDS}
TRIAL_ATTRS = tuple(f.name for f in SUMMARY_FIELDS if f.trial_attr)
TAG_FIELDS = tuple(f.name for f in SUMMARY_FIELDS if f.tag)
OBJECTIVE_METRICS = tuple(f.name for f in SUMMARY_FIELDS if f.objective)
INT_FIELDS = tuple(f.name for f in SUMMARY_FIELDS if f.kind is int)
NUMERIC_FIELDS = tuple(f.name for f in SUMMARY_FIELDS if f.numeric)
