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

Running away (:func:`runaway`), the one rule the label and the forecast share: the weight norm,
carried forward to a horizon step, would meet one of the in-run blow-up rules of
:mod:`pinnlab.training.divergence` there: ``max_weight_ratio`` × its initial value, or a growth rate
≥ ``growth_rate`` once past ``growth_min_ratio`` ×.  What is carried forward:

* the later half's rate of ln‖W‖, when the growth is steady (above);
* the whole window's mean rate, when a loss term is unbounded below and the loss still falls
  steadily: such a loss has no minimum for the weights to settle into, so a later rate that dips
  under ``steady`` × the earlier one is a wobble, not convergence (the README's tanh run: later /
  earlier rate 0.76 at step 720, exponential growth at 0.0021 per step by step 7,200);
* for an optimizer whose step is bounded (``names.OPTIMIZERS[...].bounded_step``: Adam, AdamW,
  RMSprop), ‖W‖ itself, linearly (its slope over the later half): such a step cannot make the norm
  grow exponentially, and a fitted ln-rate carried to 10× the budget claimed ×9,360 for a Helmholtz
  Adam run that ended at ×3.3 (benchmarks/results/verdicts.json).

Learning (:func:`descending`, :func:`projected_descent`, :func:`improvement`), for the
did-it-train classes of :mod:`pinnlab.training.divergence` and its veto on ``diverging``: a loss
bounded below descends when the later half of the run's mean is more than three standard errors
below the earlier half's and the last window is not rising; carried forward as a power law (the
same factor per doubling of the steps, the shape of a slowing descent) it says where the loss, or
the error against an exact solution, would be at the horizon.  Why a ratio of rates and not one
slope: docs/design.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "WeightTrend",
    "LossTrend",
    "Runaway",
    "Improvement",
    "slope",
    "weight_trend",
    "loss_trend",
    "projected_log_ratio",
    "runaway",
    "improvement",
    "descending",
    "projected_descent",
]


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
    linear: float = float("nan")  # d(‖W‖/‖W‖_0)/dstep over the later half
    linear_early: float = float("nan")  # ... over the earlier half

    @property
    def mean(self) -> float:
        """The window's mean rate of ln‖W‖ (of the two halves)."""
        return 0.5 * (self.early + self.late)

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
    rel = norms[lo : end + 1] / initial if initial > 0 else np.full(len(s), np.nan)
    linear, linear_early = slope(s[half:], rel[half:]), slope(s[:half], rel[:half])
    return WeightTrend(slope(s[:half], y[:half]), slope(s[half:], y[half:]), end, log_ratio, linear, linear_early)


def projected_log_ratio(trend: WeightTrend, horizon_step: float, rate: float | None = None) -> float:
    """ln(‖W‖/‖W‖_0) at ``horizon_step`` if ``rate`` (default: the later rate of ln‖W‖) went on unchanged."""
    rate = trend.late if rate is None else rate
    return trend.log_ratio + max(rate, 0.0) * max(horizon_step - trend.end, 0.0)


@dataclass(frozen=True)
class Runaway:
    """Why a weight norm counts as running away: the rule it would meet at ``horizon``."""

    rule: str  # "max_weight_ratio" or "growth_rate"
    rate: float  # the rate of ln‖W‖ carried forward (bounded step: once past growth_min_ratio x)
    projected: float  # ln(‖W‖/‖W‖_0) at the horizon
    horizon: float
    basis: str  # how the norm was carried forward, in words

    def describe(self, cfg) -> str:
        where = f"{math.exp(min(self.projected, 700)):.3g}x initial by step {self.horizon:.0f}"
        if self.rule == "max_weight_ratio":
            return f"{self.basis}: {where} (divergence.max_weight_ratio={cfg.max_weight_ratio:g})"
        return (
            f"{self.basis}: {where}, still growing at {self.rate:.3g} per step past "
            f"divergence.growth_min_ratio={cfg.growth_min_ratio:g}x (divergence.growth_rate={cfg.growth_rate:g})"
        )


def runaway(cfg, wt: WeightTrend | None, horizon: float, *, bounded_step: bool, loss_falls: bool) -> Runaway | None:
    """The blow-up rule the weight norm would meet by ``horizon`` (module docstring); None if none.

    ``cfg``: ``divergence.*``; ``bounded_step``: the optimizer's step is bounded (linear growth);
    ``loss_falls``: a loss term unbounded below still falls steadily (the window's mean rate counts).
    """
    if wt is None or not math.isfinite(wt.log_ratio):
        return None
    if bounded_step:  # steadiness of the linear slope (a linear norm's ln-rate always decays)
        lin, early = wt.linear, wt.linear_early
        if not (math.isfinite(lin) and math.isfinite(early)):
            return None
        if not (lin > 0 and wt.late >= cfg.trend_min_rate and lin >= cfg.trend_steady * early):
            if not (loss_falls and lin + early > 0):
                return None
            lin = 0.5 * (lin + early)  # the window's mean slope
        ratio = math.exp(wt.log_ratio)
        projected = math.log(ratio + lin * max(horizon - wt.end, 0.0))
        rate = lin / max(cfg.growth_min_ratio, ratio)  # d ln||W||/dstep once past growth_min_ratio x
        basis = f"||W|| growing linearly (bounded steps) at {lin:.3g}x initial per step, {ratio:.3g}x now"
    else:
        if wt.steady(cfg.trend_steady, cfg.trend_min_rate):
            rate, basis = wt.late, f"d ln||W||/dstep = {wt.late:.3g} at the end (earlier {wt.early:.3g})"
        elif loss_falls and wt.mean >= cfg.trend_min_rate:
            rate, basis = (
                wt.mean,
                f"d ln||W||/dstep = {wt.mean:.3g} over the window (the loss unbounded below still falling)",
            )
        else:
            return None
        projected = projected_log_ratio(wt, horizon, rate)
        basis += f", {math.exp(wt.log_ratio):.3g}x initial now"
    if projected >= math.log(cfg.max_weight_ratio):
        return Runaway("max_weight_ratio", rate, projected, horizon, basis)
    if rate >= cfg.growth_rate and projected >= math.log(cfg.growth_min_ratio):
        return Runaway("growth_rate", rate, projected, horizon, basis)
    return None


def descending(losses: np.ndarray, end: int, window: int) -> tuple[float, float] | None:
    """The means of the loss over the earlier and the later half of steps ``0..end`` when the run
    descends; None otherwise.  Descends: the later half's mean is lower by more than three standard
    errors of that half's mean (its own noise: the earlier half holds the initial fall, which is
    not noise), and over the last ``window`` steps (at most half the run) the loss is not rising
    (the later half of the window no more than three standard errors above the earlier).

    For a loss bounded below this is the evidence that the run is learning: it descends, and
    weights that grow meanwhile grow to fit.  Why both halves of the run and not the trend window
    alone: at short budgets the window is a few dozen mini-batch losses whose noise hides a descent
    the whole run shows (a 40-step seed-fixed run: means 5.4 then 3.2, its last 20 steps flat).
    The window check keeps a run that learned early and is now rising (unstable) out of it.
    """
    x = losses[: end + 1]
    half = len(x) // 2
    if half < 2 or not np.isfinite(x).all():
        return None
    a, b = x[:half], x[half:]
    ma, mb = float(a.mean()), float(b.mean())
    if not ma - mb > 3 * float(b.std(ddof=1)) / math.sqrt(len(b)):
        return None
    w = min(window, half)
    tail = x[len(x) - w :]
    p, q = tail[: w // 2], tail[w // 2 :]
    if len(p) >= 2 and len(q) >= 2:
        se = math.sqrt(p.var(ddof=1) / len(p) + q.var(ddof=1) / len(q))
        if q.mean() - p.mean() > 3 * se:
            return None
    return ma, mb


def projected_descent(descent: tuple[float, float], horizon: float) -> float:
    """The loss at ``horizon`` x the steps if the descent between the run's two halves goes on as a
    power law: the halves' means sit at a quarter and three quarters of the run, log2(3) doublings
    of the step apart, and the later one is log2(horizon / 0.75) doublings from the horizon."""
    earlier, later = descent
    if earlier <= 0 or later <= 0:
        return later
    per_doubling = (later / earlier) ** (1 / math.log2(3))
    return later * min(per_doubling, 1.0) ** math.log2(horizon / 0.75)


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


@dataclass(frozen=True)
class Improvement:
    """How a measure of the answer moved over the later part of a run, and where that leads.

    ``measure`` fell from ``before`` (at step ``start``) to ``after`` (at ``end``).  The fall is
    carried forward as a power law (the same factor per doubling of the steps, the shape of a
    slowing descent), so ``projected`` is the measure at ``horizon`` x the steps run.
    """

    measure: str
    start: int
    end: int
    before: float
    after: float
    projected: float

    @property
    def per_doubling(self) -> float:
        """after/before per doubling of the steps (1: flat; < 1: falling)."""
        n = math.log2((self.end + 1) / (self.start + 1))
        return (self.after / self.before) ** (1 / n) if n > 0 and self.before > 0 else 1.0

    def describe(self) -> str:
        return (
            f"{self.measure} {self.before:.3g} at step {self.start} -> {self.after:.3g} at step {self.end}, "
            f"x{self.per_doubling:.3g} per doubling of the steps"
        )


def improvement(measure: str, steps: np.ndarray, values: np.ndarray, end: int, horizon: float) -> Improvement | None:
    """The fall of ``values`` (a measure of the answer at ``steps``, the last at ``end``) from the
    point nearest half the run to the end, carried to ``horizon`` x the steps (:class:`Improvement`);
    None with fewer than two finite positive values."""
    ok = np.isfinite(values) & (values > 0) & (steps <= end)
    steps, values = steps[ok], values[ok]
    if len(steps) < 2:
        return None
    after, last = float(values[-1]), int(steps[-1])
    i = int(np.argmin(np.abs(steps[:-1] - last / 2)))
    start, before = int(steps[i]), float(values[i])
    flat = Improvement(measure, start, last, before, after, after)
    return replace(flat, projected=after * min(flat.per_doubling, 1.0) ** math.log2(max(horizon, 1.0)))
