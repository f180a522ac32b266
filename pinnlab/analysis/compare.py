"""Stable against divergent: rates, onset steps and weight growth per factor level.

Everything here is plain pandas on the frames of :mod:`pinnlab.analysis.frames`, so it works on any
DataFrame with those columns (a notebook's filtered copy, a frame built by hand in a test).

Which trials count
------------------
Divergence rates are over the trials that have a pinnlab outcome (they trained to a verdict):
``diverged`` = outcome in diverging / nan / blowup / unbounded; ``stable`` and ``silent_failure`` are not
divergent.  Crashed, retried and surplus trials (Optuna FAIL without an outcome, see
:mod:`pinnlab.analysis.frames`) and unfinished ones are left out of every rate and counted apart
(:func:`outcome_counts`).

Levels of a factor
------------------
A factor with at most ``MAX_LEVELS`` distinct values (every categorical in practice, and grids)
is grouped by its values.  A numeric factor with more, and a sampled range (``low``/``high``
without ``step`` in its stored spec) whatever its number of trials, is cut into ``BINS``
equal-count bins, in log space when its range is log-sampled; a bin's label is its range
(``0.001 to 0.0063``).  With few trials a range gets fewer bins, each of at least ``MIN_BIN``
trials' values (3 bins at 6 trials, one level below 4): a level per sampled value would hold one
trial each and say nothing about a rate.  :func:`level_label` is the text of a level wherever one
is printed, so a value reads the same in every table (``0`` for ``0``, ``0.0`` and ``0.0e0``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.core.outcomes import DIVERGENT, RUN_OUTCOMES, UNJUDGED, Outcome
from pinnlab.training.divergence import growth_rate

__all__ = [
    "MAX_LEVELS",
    "BINS",
    "MIN_BIN",
    "factor_levels",
    "level_label",
    "judged",
    "outcome_counts",
    "divergence_overall",
    "divergence_by_factor",
    "divergence_by_pair",
    "step_distribution",
    "weight_growth",
    "growth_by_group",
    "stable_ranking",
    "GROWTH_METRIC",
]

MAX_LEVELS = 8  # more distinct values than this: bin the factor (a table of 24 singletons says nothing)
BINS = 4  # quartile bins: with the tens of trials of a sweep, each bin still holds several
MIN_BIN = 2  # distinct values per bin of a sampled range at least: one trial per level is no rate
GROWTH_METRIC = "weight_norm/total"


def _fmt(x: float) -> str:
    """A bin edge, short: 0.0014, 7.8, 170, 4.1e3, 1e-05 -> 1e-5."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return np.format_float_positional(x, precision=2, unique=False, fractional=False, trim="-")
    mantissa, exp = f"{x:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def level_label(value: Any) -> str:
    """The printed text of a level: a bin range or a choice as it is, a whole number without a
    decimal point (``0.0`` -> ``0``), other numbers to 4 significant digits (``1e-4`` -> ``0.0001``,
    ``1e19`` -> ``1e19``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    text = f"{value:.4g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def _sampled_range(spec: dict[str, Any] | None) -> bool:
    """A stored spec of a range Optuna samples from (not choices, not a grid of steps)."""
    spec = spec or {}
    return spec.get("choices") is None and spec.get("low") is not None and spec.get("step") is None


def factor_levels(trials: pd.DataFrame, factor: str, space: dict[str, Any] | None = None) -> pd.Series:
    """The group label of each trial for ``factor``: an ordered Categorical (values, or bin ranges).

    ``space``: the factor's spec (``{"low":…, "high":…, "log": true}``) if known; a sampled range is
    binned whatever its number of values (module docstring), log ranges in log space.
    """
    values = trials[factor]
    distinct = pd.unique(values.dropna())
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric or (len(distinct) <= MAX_LEVELS and not _sampled_range(space)):
        try:
            order = sorted(distinct)
        except TypeError:  # mixed types in one categorical: keep the first-seen order
            order = list(distinct)
        return pd.Series(pd.Categorical(values, categories=order, ordered=True), index=trials.index, name=factor)
    x = values.astype(float)
    log = bool((space or {}).get("log")) or (x.min() > 0 and x.max() / x.min() > 100)
    key = np.log10(x) if log else x
    bins = min(BINS, len(distinct) // MIN_BIN)
    if bins <= 1:  # too few trials to split: one level spanning them
        lo, hi = x.min(), x.max()
        labels = [_fmt(lo) if lo == hi else f"{_fmt(lo)} to {_fmt(hi)}"] if len(distinct) else []
        codes = pd.Series(np.where(x.notna(), 0, -1), index=x.index)
    else:
        codes, edges = pd.qcut(key, q=bins, labels=False, retbins=True, duplicates="drop")
        edges = 10**edges if log else edges
        labels = [f"{_fmt(lo)} to {_fmt(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]
    cat = pd.Categorical.from_codes(codes.fillna(-1).astype(int), categories=labels, ordered=True)
    return pd.Series(cat, index=trials.index, name=factor)


def judged(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with a pinnlab outcome other than crash, retried or surplus (the denominator of
    every rate)."""
    return trials[trials["outcome"].notna() & ~trials["outcome"].isin(UNJUDGED)]


def outcome_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per outcome (``crash`` / ``retried`` / ``surplus`` for FAIL trials without one,
    ``unfinished`` for the rest)."""
    out = trials["outcome"].fillna("unfinished").value_counts()
    return {str(k): int(v) for k, v in sorted(out.items())}


def _rate_stats(group: pd.DataFrame) -> dict[str, Any]:
    n = len(group)
    d = int(group["outcome"].isin(DIVERGENT).sum())
    row = {"n": n, "diverged": d, "rate": d / n if n else float("nan")}
    for o in RUN_OUTCOMES:
        row[o] = int((group["outcome"] == o).sum())
    return row


def divergence_overall(trials: pd.DataFrame) -> dict[str, Any]:
    return _rate_stats(judged(trials))


def divergence_by_factor(
    trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None = None
) -> pd.DataFrame:
    """Columns: factor, level, n, diverged, rate, and one count per outcome class."""
    t = judged(trials)
    rows = []
    for f in factors:
        levels = factor_levels(t, f, (space or {}).get(f))
        for level, group in t.groupby(levels, observed=True, sort=True):
            rows.append({"factor": f, "level": level, **_rate_stats(group)})
    return pd.DataFrame(rows, columns=["factor", "level", "n", "diverged", "rate", *RUN_OUTCOMES])


def divergence_by_pair(
    trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None = None
) -> pd.DataFrame:
    """Columns: factor_a, level_a, factor_b, level_b, n, diverged, rate (every pair of factors)."""
    t = judged(trials)
    space = space or {}
    levels = {f: factor_levels(t, f, space.get(f)) for f in factors}
    rows = []
    for a, b in itertools.combinations(factors, 2):
        for (la, lb), group in t.groupby([levels[a], levels[b]], observed=True, sort=True):
            s = _rate_stats(group)
            rows.append(
                {
                    "factor_a": a,
                    "level_a": la,
                    "factor_b": b,
                    "level_b": lb,
                    "n": s["n"],
                    "diverged": s["diverged"],
                    "rate": s["rate"],
                }
            )
    return pd.DataFrame(rows, columns=["factor_a", "level_a", "factor_b", "level_b", "n", "diverged", "rate"])


def _quantiles(x: pd.Series) -> dict[str, Any]:
    x = pd.to_numeric(x, errors="coerce").dropna().astype(float)
    if x.empty:
        return {"count": 0, "median": None, "q1": None, "q3": None, "min": None, "max": None}
    return {
        "count": int(len(x)),
        "median": float(x.median()),
        "q1": float(x.quantile(0.25)),
        "q3": float(x.quantile(0.75)),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def step_distribution(
    trials: pd.DataFrame,
    factors: Sequence[str],
    column: str = "nan_onset_step",
    space: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """Distribution of ``column`` (a step, or any number) per factor level, plus an ``(all)`` row.

    Columns: factor, level, n (judged trials in the group), count (trials with a value: for
    ``nan_onset_step``, the trials that went NaN), median, q1, q3, min, max.
    """
    t = judged(trials)
    rows = [{"factor": "(all)", "level": "(all)", "n": len(t), **_quantiles(t[column])}]
    for f in factors:
        levels = factor_levels(t, f, (space or {}).get(f))
        for level, group in t.groupby(levels, observed=True, sort=True):
            rows.append({"factor": f, "level": level, "n": len(group), **_quantiles(group[column])})
    return pd.DataFrame(rows, columns=["factor", "level", "n", "count", "median", "q1", "q3", "min", "max"])


def weight_growth(history: pd.DataFrame, metric: str = GROWTH_METRIC) -> pd.Series:
    """Per trial: least-squares slope of ln(weight norm) over steps, per step, over its whole history.

    :func:`pinnlab.training.divergence.growth_rate` (the rule the ``blowup`` outcome uses, here over
    every finite step instead of a trailing window).  NaN for a trial with fewer than 2 steps.
    """
    sel = history[history["metric"] == metric]
    out = {}
    for trial, group in sel.groupby("trial", sort=True):
        group = group.sort_values("step")
        out[int(trial)] = growth_rate(group["step"].to_numpy(), group["value"].to_numpy(dtype=float))
    return pd.Series(out, name="weight_growth_rate", dtype=float)


def growth_by_group(trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None = None) -> pd.DataFrame:
    """Distribution of ``weight_growth_rate`` (a trials column) per factor level and overall."""
    return step_distribution(trials, factors, "weight_growth_rate", space)


def stable_ranking(
    trials: pd.DataFrame, factors: Sequence[str], direction: str = "minimize", limit: int | None = None
) -> pd.DataFrame:
    """The ``stable`` trials with a finite objective value, best first.

    Columns: rank, trial, value, the factors, weight_growth_rate (if present), mlflow_run_id.
    """
    t = trials[
        (trials["outcome"] == Outcome.STABLE) & trials["value"].map(lambda v: v is not None and math.isfinite(v))
    ]
    t = t.sort_values(["value", "trial"], ascending=[direction != "maximize", True])
    cols = ["trial", "value", *factors] + [c for c in ("weight_growth_rate", "mlflow_run_id") if c in t.columns]
    out = t[cols].reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out if limit is None else out.head(limit)
