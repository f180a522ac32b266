"""The result of one run: what happened, when, and the whole history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pinnlab.core.outcomes import Outcome
from pinnlab.core.summary import SUMMARY_FIELDS

NO_FORECAST = {"first_alarm_step": None, "signal": None, "value": None}

__all__ = ["RunResult"]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass
class RunResult:
    """Outcome, NaN onset, summary numbers and the per-step history of a run.

    ``history`` has one row per step (index ``step``) and one column per metric; diagnostics that
    are computed every ``diagnostics.every`` steps are NaN on the other rows.  Rows hold the state
    *entering* the step (loss, gradients and weights at w_step) and the update the step made
    (``update_ratio/*``).
    """

    config: Any
    outcome: Outcome
    reason: str
    nan_onset_step: int | None
    first_nonfinite: str | None
    steps_run: int
    steps_budget: int
    wall_seconds: float
    compile_seconds: float
    initial_loss: float | None
    final_loss: float | None
    weight_norm_initial: float
    weight_norm_final: float
    rel_l2_error: float | None
    heldout_ratio: float | None
    heldout_residual: float | None = None  # mean square PDE residual on held-out points
    stopped_by: str | None = None  # a callback ended the run early (e.g. a sweep pruner)
    warnings: list[str] = field(default_factory=list)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    final_metrics: dict[str, float] = field(default_factory=dict)
    divergence_step: int | None = None
    forecast: dict[str, Any] = field(default_factory=dict)  # {first_alarm_step, signal, value}
    causes: list[dict[str, str]] = field(default_factory=list)  # [{cause, evidence, remedy}]
    risks: list[dict[str, str]] = field(default_factory=list)  # the same rules on a run that worked
    known_causes: str = ""  # causes known before training (pinnlab.training.causes.static_causes), comma-separated
    # training.replicates > 1: one row per seed (pinnlab.config.replicates.combine); None for one run
    replicates: list[dict[str, Any]] | None = None
    divergence_rate: float | None = None  # fraction of replicates that diverged (one run: 0 or 1)
    replicate_results: list[RunResult] = field(default_factory=list, repr=False)  # each seed's result

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)
        if self.divergence_rate is None:
            self.divergence_rate = float(self.outcome.divergent)

    @property
    def diverged(self) -> bool:
        return self.outcome.divergent

    @property
    def weight_norm_ratio(self) -> float | None:
        """Final over initial global weight norm (None when either is missing or not finite)."""
        if not self.weight_norm_initial or not math.isfinite(self.weight_norm_final):
            return None
        return _num(self.weight_norm_final / self.weight_norm_initial)

    @property
    def alarm_step(self) -> int | None:
        return (self.forecast or {}).get("first_alarm_step")

    @property
    def alarm_signal(self) -> str | None:
        return (self.forecast or {}).get("signal")

    @property
    def cause_names(self) -> str:
        """The names of ``causes``, comma-separated ("" for none): a tag and a frame column."""
        return ",".join(c["cause"] for c in self.causes)

    @property
    def risk_names(self) -> str:
        """The names of ``risks``, comma-separated ("" for none)."""
        return ",".join(c["cause"] for c in self.risks)

    @property
    def problem(self) -> str:
        return self.config.problem.name

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what ``pinnlab run --json`` prints): the fields of
        :data:`pinnlab.core.summary.SUMMARY_FIELDS`, in that order, non-finite numbers as None."""
        out: dict[str, Any] = {}
        for f in SUMMARY_FIELDS:
            value = getattr(self, f.name)
            if f.name == "final_metrics":
                value = {k: _num(v) for k, v in value.items()}
            elif f.name in ("warnings", "causes", "risks"):
                value = [dict(v) if isinstance(v, dict) else v for v in value]
            elif f.name == "forecast":
                value = {k: _num(v) if isinstance(v, float) else v for k, v in (value or NO_FORECAST).items()}
            elif f.name == "outcome":
                value = str(value)
            elif f.kind is float:
                value = _num(value)
                if value is not None and f.name.endswith("_seconds"):
                    value = round(value, 3)
            out[f.name] = value
        return out
