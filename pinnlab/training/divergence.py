"""Outcome classes of a run and the rules that assign them.

==================  ==========================================================================
``stable``          finished its budget with finite values, and no rule below fired
``nan``             some loss, gradient or weight became NaN/inf (the step and the first
                    non-finite tensor are recorded; the update is not applied)
``blowup``          the global weight norm passed ``max_weight_ratio`` × its initial value or
                    ``max_weight_norm``, or grew exponentially: the least-squares slope of
                    ln‖W‖ over the last ``growth_window`` steps is ≥ ``growth_rate`` per step
                    while ‖W‖ ≥ ``growth_min_ratio`` × initial
``unbounded``       the total loss fell below ``loss_floor`` (a loss unbounded below, such as
                    the raw mean of u_x + u_yy, being driven to −∞)
``silent_failure``  finite, with a training loss that fell to ≤ ``low_loss_ratio`` × its initial
                    value, but wrong: relative L2 error against the exact solution above
                    ``max_rel_error`` (where one is known), or a PDE residual on held-out points
                    above ``max_heldout_ratio`` × the residual on the training points
==================  ==========================================================================

The thresholds live in ``DivergenceConfig`` (``divergence.*`` in YAML).  ``nan``, ``blowup`` and
``unbounded`` are detected while training (and stop the run when ``stop_early``); ``silent_failure``
is decided at the end.  The first rule to fire names the outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pinnlab.outcomes import Outcome

__all__ = ["Verdict", "DivergenceMonitor", "classify_finished", "growth_rate"]


def growth_rate(steps: np.ndarray, norms: np.ndarray) -> float:
    """Least-squares slope of ln(norm) against step (per step); NaN with < 2 usable points."""
    ok = np.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return float("nan")
    s = steps[ok].astype(float)
    y = np.log(norms[ok])
    s = s - s.mean()
    denom = float((s * s).sum())
    return float((s * (y - y.mean())).sum() / denom) if denom > 0 else float("nan")


@dataclass
class Verdict:
    """A divergence rule that fired: the outcome, the step it fired at, and the evidence."""

    outcome: Outcome
    step: int
    reason: str


class DivergenceMonitor:
    """Watches the per-step loss and weight norm; ``check`` returns a Verdict once a rule fires.

    The caller records ``weight_norm`` for every step in ``norms`` (a preallocated array) so the
    exponential-growth fit can look back without copies.
    """

    def __init__(self, cfg, norms: np.ndarray, check_every: int):
        self.cfg = cfg
        self.norms = norms
        self.check_every = max(1, min(check_every, cfg.growth_window // 4))
        self.initial: float | None = None

    def check(self, step: int, loss: float, weight_norm: float) -> Verdict | None:
        cfg = self.cfg
        if self.initial is None:
            self.initial = weight_norm
        if loss < cfg.loss_floor:
            return Verdict(Outcome.UNBOUNDED, step, f"loss {loss:.3g} fell below divergence.loss_floor={cfg.loss_floor:g}")
        ratio = weight_norm / self.initial if self.initial > 0 else math.inf
        if ratio >= cfg.max_weight_ratio:
            return Verdict(
                Outcome.BLOWUP, step, f"weight norm grew {ratio:.3g}x (divergence.max_weight_ratio={cfg.max_weight_ratio:g})"
            )
        if weight_norm >= cfg.max_weight_norm:
            return Verdict(
                Outcome.BLOWUP, step, f"weight norm {weight_norm:.3g} >= divergence.max_weight_norm={cfg.max_weight_norm:g}"
            )
        if step >= cfg.growth_window and step % self.check_every == 0 and ratio >= cfg.growth_min_ratio:
            lo = step - cfg.growth_window + 1
            rate = growth_rate(np.arange(lo, step + 1), self.norms[lo : step + 1])
            if rate >= cfg.growth_rate:
                return Verdict(
                    Outcome.BLOWUP,
                    step,
                    f"weight norm growing exponentially: d ln||W||/dstep = {rate:.3g} over {cfg.growth_window} steps "
                    f"(divergence.growth_rate={cfg.growth_rate:g}), {ratio:.3g}x initial",
                )
        return None


def classify_finished(
    cfg,
    *,
    initial_loss: float | None,
    final_loss: float | None,
    rel_l2_error: float | None,
    heldout_ratio: float | None,
) -> tuple[Outcome, str, list[str]]:
    """Outcome of a run that finished finite: ``(outcome, reason, warnings)``."""
    warnings: list[str] = []
    wrong = []
    if rel_l2_error is not None and rel_l2_error > cfg.max_rel_error:
        wrong.append(f"relative L2 error {rel_l2_error:.3g} > divergence.max_rel_error={cfg.max_rel_error:g}")
    if heldout_ratio is not None and heldout_ratio > cfg.max_heldout_ratio:
        wrong.append(
            f"held-out residual {heldout_ratio:.3g}x the training residual "
            f"(divergence.max_heldout_ratio={cfg.max_heldout_ratio:g})"
        )
    low = (
        initial_loss is not None
        and final_loss is not None
        and initial_loss > 0
        and final_loss <= cfg.low_loss_ratio * initial_loss
    )
    if wrong and low:
        ratio = final_loss / initial_loss
        return Outcome.SILENT_FAILURE, f"training loss fell to {ratio:.3g}x its initial value, but " + "; ".join(wrong), warnings
    if wrong:
        warnings.append("not converged: " + "; ".join(wrong))
    return Outcome.STABLE, "finished its budget with finite values", warnings
