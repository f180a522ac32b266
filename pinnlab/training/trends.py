"""Trends of a run's last steps: is the weight norm or an unbounded-below loss still running away?

Two questions share this module, so the end-of-run label (``diverging``, in
:mod:`pinnlab.training.divergence`) and the forecast alarms during a run
(:mod:`pinnlab.training.forecast`) cannot disagree on what "still running away" means.

Weights: :func:`weight_trend` fits ln‖W‖ against step by least squares on the earlier and the
later half of a window; growth is *steady* when the later slope is at least ``steady`` times the
earlier one (a decelerating slope is convergence: a geometric decay of the rate has a finite sum).
The projection :func:`projected_log_ratio` extends the later slope linearly to a horizon step.

Loss: :func:`loss_trend` splits the window into four blocks, takes their means (a mini-batch loss
is noisy; block means average it) and calls the fall *steady* when every block is below the
previous one, the last fall is at least ``steady`` times the first, and the whole fall exceeds
three standard errors of a block mean (so a converged loss wobbling in its noise never fires).

Tried first: one slope over the whole window against an absolute threshold.  The well-posed
``seed-fixed`` run grows its weights at d ln‖W‖/dstep ≈ 6e-4 around step 1,000 and stops at
×2.6–3 (the rate decays), while the README's raw-loss tanh run grows at ≈ 1.7e-3 and keeps going:
an absolute rate cannot separate "still growing" from "still settling"; the ratio of the later to
the earlier rate does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["WeightTrend", "LossTrend", "slope", "weight_trend", "loss_trend", "projected_log_ratio"]


def slope(steps: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` against ``steps`` over the finite entries; NaN if < 2."""
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return float("nan")
    s = steps[ok].astype(float)
    y = values[ok].astype(float)
    s = s - s.mean()
    denom = float((s * s).sum())
    return float((s * (y - y.mean())).sum() / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class WeightTrend:
    """Slopes of ln‖W‖ per step on the earlier and later half of a window ending at ``end``."""

    early: float
    late: float
    end: int
    log_ratio: float  # ln(‖W‖_end / ‖W‖_0)

    def steady(self, steady: float, min_rate: float) -> bool:
        """Still growing: the later rate is at least ``min_rate`` and ``steady`` x the earlier."""
        return self.late >= min_rate and self.late >= steady * self.early


@dataclass(frozen=True)
class LossTrend:
    """Block means of the loss over a window, and whether they fall steadily."""

    blocks: tuple[float, ...]
    slope: float  # per step, over the whole window
    steady_fall: bool


def weight_trend(norms: np.ndarray, end: int, window: int) -> WeightTrend | None:
    """The trend of ``norms[: end + 1]`` (the global weight norm per step) over the last ``window``
    steps (at most half of those recorded); None when fewer than 8 steps are available."""
    window = min(window, (end + 1) // 2)
    if window < 8:
        return None
    lo = end - window + 1
    mid = lo + window // 2
    y = np.log(np.where(norms[lo : end + 1] > 0, norms[lo : end + 1], np.nan))
    s = np.arange(lo, end + 1)
    half = mid - lo
    initial = float(norms[0])
    log_ratio = math.log(norms[end] / initial) if initial > 0 and norms[end] > 0 else float("nan")
    return WeightTrend(slope(s[:half], y[:half]), slope(s[half:], y[half:]), end, log_ratio)


def projected_log_ratio(trend: WeightTrend, horizon_step: float) -> float:
    """ln(‖W‖/‖W‖_0) at ``horizon_step`` if the later rate went on unchanged."""
    return trend.log_ratio + max(trend.late, 0.0) * max(horizon_step - trend.end, 0.0)


def loss_trend(losses: np.ndarray, end: int, window: int, steady: float) -> LossTrend | None:
    """The trend of ``losses[: end + 1]`` over the last ``window`` steps (at most half of those
    recorded), in four blocks; None when a block would hold fewer than 4 steps."""
    window = min(window, (end + 1) // 2)
    size = window // 4
    if size < 4:
        return None
    lo = end + 1 - 4 * size
    chunk = losses[lo : end + 1].reshape(4, size)
    if not np.isfinite(chunk).all():
        return LossTrend((), float("nan"), False)
    means = chunk.mean(axis=1)
    falls = -np.diff(means)  # positive = falling
    se = float(np.sqrt(np.mean(chunk.var(axis=1, ddof=1)) / size))
    total = float(falls.sum())
    ok = bool((falls > 0).all() and falls[-1] >= steady * falls[0] and total > 3 * se)
    return LossTrend(tuple(float(m) for m in means), slope(np.arange(lo, end + 1), chunk.ravel()), ok)
