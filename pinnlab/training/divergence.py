"""Outcome classes of a run and the rules that assign them.

==================  ==========================================================================
``stable``          finished its budget with finite values, and no rule below fired: right, or
                    wrong but still training (a "not converged" warning)
``nan``             some loss, gradient or weight became NaN/inf (the step and the first
                    non-finite tensor are recorded; the update is not applied)
``blowup``          the global weight norm passed ``max_weight_ratio`` × its initial value or
                    ``max_weight_norm``, or grew exponentially: the least-squares slope of
                    ln‖W‖ over the last ``growth_window`` steps is ≥ ``growth_rate`` per step
                    while ‖W‖ ≥ ``growth_min_ratio`` × initial
``unbounded``       the total loss fell below ``loss_floor`` (a loss unbounded below, such as
                    the raw mean of u_x + u_yy, being driven to −∞)
``diverging``       finite at the end of the budget, but still running away: carried forward to
                    ``horizon`` × the steps run, the weight norm would meet a ``blowup`` rule
                    (``max_weight_ratio`` × initial, or a ln-rate ≥ ``growth_rate`` past
                    ``growth_min_ratio`` ×), or an unbounded-below loss falling steadily would
                    pass ``loss_floor``.  Carried forward: the later-half rate of ln‖W‖ over the
                    last ``trend_window`` steps (at most half the run) when it is ≥
                    ``trend_min_rate`` and ≥ ``trend_steady`` × the earlier half's; the window's
                    mean rate when a loss term unbounded below still falls steadily; ‖W‖ linearly
                    for an optimizer with a bounded step (Adam, AdamW, RMSprop).  See
                    :func:`pinnlab.training.trends.runaway` (why each) and docs/verdicts.md.
                    Never for a loss bounded below that still descends
                    (:func:`pinnlab.training.trends.descending`): its weights grow to fit
``stalled``         finite and wrong (:func:`wrong_answer`), and not training: a loss bounded below
                    still ≥ ``stalled_loss_ratio`` × its initial value and not descending fast
                    enough to get under it by ``horizon`` × the steps, or (a loss unbounded
                    below) an error that does not fall fast enough to be right there
``silent_failure``  finite, with a loss bounded below that fell to ≤ ``low_loss_ratio`` × its
                    initial value, but wrong: relative L2 error against the exact solution above
                    ``max_rel_error`` (where one is known), or a PDE residual on held-out points
                    above ``max_heldout_ratio`` × the residual on the training points
==================  ==========================================================================

The thresholds live in ``DivergenceConfig`` (``divergence.*`` in YAML).  ``nan``, ``blowup`` and
``unbounded`` are detected while training (and stop the run when ``stop_early``); ``diverging``,
``silent_failure`` and ``stalled`` are decided at the end (``diverging`` first: a run still running
away is not judged on its error).  The first rule to fire names the outcome.

Thresholds, checked against the label benchmark (``benchmarks/studies/verdicts.py``, docs/verdicts.md):
``max_weight_ratio`` 1e3 is also the benchmark's truth criterion; the in-run rules are unchanged,
and runs they leave finite but still running away (trial 6 of the seed sweep: ×17.9 and rising at
8.6e-4 per step, under ``growth_rate``) are labelled ``diverging`` at the end instead of ``stable``.
The benchmark's figures per threshold are in docs/verdicts.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pinnlab.core.outcomes import Outcome
from pinnlab.training.trends import Improvement, descending, loss_trend, projected_descent, runaway, weight_trend

__all__ = ["Verdict", "DivergenceMonitor", "classify_finished", "classify_trend", "growth_rate"]


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
            return Verdict(
                Outcome.UNBOUNDED, step, f"loss {loss:.3g} fell below divergence.loss_floor={cfg.loss_floor:g}"
            )
        ratio = weight_norm / self.initial if self.initial > 0 else math.inf
        if ratio >= cfg.max_weight_ratio:
            return Verdict(
                Outcome.BLOWUP,
                step,
                f"weight norm grew {ratio:.3g}x (divergence.max_weight_ratio={cfg.max_weight_ratio:g})",
            )
        if weight_norm >= cfg.max_weight_norm:
            return Verdict(
                Outcome.BLOWUP,
                step,
                f"weight norm {weight_norm:.3g} >= divergence.max_weight_norm={cfg.max_weight_norm:g}",
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


def wrong_answer(cfg, *, rel_l2_error, heldout_ratio, loss_ratio, bounded: bool) -> list[str]:
    """Why a finished run's answer is wrong (empty: it is right).  With an exact solution: the
    relative L2 error above ``max_rel_error``; always: a held-out residual above
    ``max_heldout_ratio`` x the training one; without an exact solution: a loss bounded below still
    above ``stalled_loss_ratio`` x its initial value (it has not learned the equation)."""
    wrong = []
    if rel_l2_error is not None and rel_l2_error > cfg.max_rel_error:
        wrong.append(f"relative L2 error {rel_l2_error:.3g} > divergence.max_rel_error={cfg.max_rel_error:g}")
    if heldout_ratio is not None and heldout_ratio > cfg.max_heldout_ratio:
        wrong.append(
            f"held-out residual {heldout_ratio:.3g}x the training residual "
            f"(divergence.max_heldout_ratio={cfg.max_heldout_ratio:g})"
        )
    if rel_l2_error is None and bounded and loss_ratio is not None and loss_ratio > cfg.stalled_loss_ratio:
        wrong.append(
            f"no exact solution, and the loss is still {loss_ratio:.3g}x its initial value "
            f"(divergence.stalled_loss_ratio={cfg.stalled_loss_ratio:g})"
        )
    return wrong


def classify_finished(
    cfg,
    *,
    initial_loss: float | None,
    final_loss: float | None,
    rel_l2_error: float | None,
    heldout_ratio: float | None,
    improving: Improvement | None = None,
    bounded: bool = True,
    descent: tuple[float, float] | None = None,
) -> tuple[Outcome, str, list[str]]:
    """Outcome of a run that finished finite: ``(outcome, reason, warnings)``.

    Right (:func:`wrong_answer` finds nothing): ``stable``.  Wrong, with a loss bounded below at
    most ``low_loss_ratio`` x its initial value: ``silent_failure`` (it fitted its loss, not the
    answer; a loss unbounded below has no such level).  Wrong, but still training: a loss bounded
    below under ``stalled_loss_ratio`` x its initial value or descending fast enough to be under it
    at ``horizon`` x the steps (``descent``: the means of the two halves of the run,
    :func:`pinnlab.training.trends.descending`, carried forward by
    :func:`~pinnlab.training.trends.projected_descent`), or an error
    against the exact solution ``improving`` fast enough to be right by ``horizon`` x the steps:
    ``stable`` with a "not converged" warning.  Any other wrong run:
    ``stalled``.  The thresholds and their evidence: docs/verdicts.md, "Did it train".
    """
    warnings: list[str] = []
    ratio = final_loss / initial_loss if initial_loss and final_loss is not None and initial_loss > 0 else None
    wrong = wrong_answer(cfg, rel_l2_error=rel_l2_error, heldout_ratio=heldout_ratio, loss_ratio=ratio, bounded=bounded)
    if not wrong:
        return Outcome.STABLE, "finished its budget with finite values", warnings
    if bounded and ratio is not None and ratio <= cfg.low_loss_ratio:
        return (
            Outcome.SILENT_FAILURE,
            f"training loss fell to {ratio:.3g}x its initial value, but " + "; ".join(wrong),
            warnings,
        )
    target = None if ratio is None else cfg.stalled_loss_ratio * initial_loss
    reaches = descent is not None and target is not None and projected_descent(descent, cfg.horizon) <= target
    if bounded and ratio is not None and (ratio < cfg.stalled_loss_ratio or reaches):
        how = (
            f"the loss is {ratio:.3g}x its initial value (divergence.stalled_loss_ratio={cfg.stalled_loss_ratio:g})"
            if ratio < cfg.stalled_loss_ratio
            else f"the loss still descends (mean {descent[0]:.3g} over the first half of the run, {descent[1]:.3g} over "
            f"the second; carried to {cfg.horizon:g} x the steps, {projected_descent(descent, cfg.horizon):.3g}, "
            f"under {cfg.stalled_loss_ratio:g} x its initial value)"
        )
        warnings.append(f"not converged: {'; '.join(wrong)}; still training: {how}")
        return Outcome.STABLE, f"finite and still training: {how}", warnings
    if improving is not None and rel_l2_error is not None and improving.projected <= cfg.max_rel_error:
        warnings.append(
            f"not converged: {'; '.join(wrong)}; still improving ({improving.describe()}: "
            f"{improving.projected:.3g} at {cfg.horizon:g} x the budget)"
        )
        return Outcome.STABLE, "finite and still improving: " + improving.describe(), warnings
    loss = "" if ratio is None else f"the loss at {ratio:.3g}x its initial value"
    err = "" if improving is None or rel_l2_error is None else f"{improving.describe()}"
    progress = "; ".join(x for x in (loss, err) if x) or "no measure of progress"
    return Outcome.STALLED, "; ".join(wrong) + f"; not training: {progress}", warnings


def classify_trend(
    cfg, *, norms: np.ndarray, losses: np.ndarray, end: int, unbounded_terms: list[str], bounded_step: bool = False
) -> Verdict | None:
    """``diverging`` for a run that finished finite at step ``end`` but is still running away.

    ``norms``/``losses``: the global weight norm and total loss per step (index = step);
    ``unbounded_terms``: the loss terms whose formulation is unbounded below; ``bounded_step``: the
    optimizer's step is bounded (``names.OPTIMIZERS``), so the norm is carried forward linearly.
    """
    horizon = cfg.horizon * (end + 1)
    if not unbounded_terms and descending(losses, end, cfg.trend_window) is not None:
        return None  # a loss bounded below still descending: the weights grow to fit, not to run away
    lt = loss_trend(losses, end, cfg.trend_window, cfg.trend_steady) if unbounded_terms else None
    falls = lt is not None and lt.steady_fall
    loss_note = ""
    if falls:
        loss_note = (
            f"; the loss, unbounded below ({', '.join(unbounded_terms)}), still falls steadily: slope {lt.slope:.3g} "
            f"per step, block means {', '.join(f'{b:.3g}' for b in lt.blocks)}"
        )
    run = runaway(cfg, weight_trend(norms, end, cfg.trend_window), horizon, bounded_step=bounded_step, loss_falls=falls)
    if run is not None:
        return Verdict(
            Outcome.DIVERGING,
            end,
            f"still running away at the end: {run.describe(cfg)} (divergence.horizon={cfg.horizon:g} x the budget)"
            + loss_note,
        )
    if falls:
        projected_loss = lt.blocks[-1] + lt.slope * (horizon - end)
        if projected_loss <= cfg.loss_floor:
            return Verdict(
                Outcome.DIVERGING,
                end,
                f"still running away at the end: the loss at that slope reaches {projected_loss:.3g} by step "
                f"{horizon:.0f}, below divergence.loss_floor={cfg.loss_floor:g} (divergence.horizon={cfg.horizon:g} "
                f"x the budget)" + loss_note,
            )
    return None
