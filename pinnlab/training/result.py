"""The result of one run: what happened, when, and the whole history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pinnlab.training.divergence import DIVERGENT

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
    outcome: str
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

    @property
    def diverged(self) -> bool:
        return self.outcome in DIVERGENT

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what ``pinnlab run --json`` prints)."""
        ratio = (
            self.weight_norm_final / self.weight_norm_initial
            if self.weight_norm_initial and math.isfinite(self.weight_norm_final)
            else None
        )
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "nan_onset_step": self.nan_onset_step,
            "first_nonfinite": self.first_nonfinite,
            "divergence_step": self.divergence_step,
            "steps_run": self.steps_run,
            "steps_budget": self.steps_budget,
            "wall_seconds": round(self.wall_seconds, 3),
            "compile_seconds": round(self.compile_seconds, 3),
            "initial_loss": _num(self.initial_loss),
            "final_loss": _num(self.final_loss),
            "weight_norm_initial": _num(self.weight_norm_initial),
            "weight_norm_final": _num(self.weight_norm_final),
            "weight_norm_ratio": _num(ratio),
            "rel_l2_error": _num(self.rel_l2_error),
            "heldout_ratio": _num(self.heldout_ratio),
            "heldout_residual": _num(self.heldout_residual),
            "stopped_by": self.stopped_by,
            "warnings": list(self.warnings),
            "problem": self.config.problem.name,
            "final_metrics": {k: _num(v) for k, v in self.final_metrics.items()},
        }
