"""Where training starts to diverge: the critical value of each numeric factor, with an interval.

For each numeric factor x (a sampled range, or numeric choices with at least ``MIN_VALUES``
distinct values) and each level of the *group* factor g (the most important categorical factor by
:func:`pinnlab.analysis.importance.divergence_importance`, other than x), a logistic model

    P(divergent | x) = 1 / (1 + exp(-(a + b·z))),    z = log10 x for a log range, x otherwise

is fitted to the seeds of that level (the units of :func:`pinnlab.analysis.survival.units`: with
replicates every seed is a 0/1 observation), and the critical value is where P = 0.5:
x* = 10^(-a/b) (or -a/b).  ``direction`` says whether P rises with x (``increasing``: learning
rates) or falls.  The interval is a percentile bootstrap: the seeds are resampled with replacement
``N_BOOT`` times and x* refitted; ``low`` / ``high`` are the 2.5 and 97.5 percentiles over the
resamples that hold both outcomes (None when fewer than half do: the data cannot place the
boundary).

Why logistic in log space: the stability threshold of gradient descent is a ratio (step size
against curvature, 2/η), so P(divergent) is a step in log η blurred by the seed; one slope and one
offset per level are all that tens of trials can pin down, and they bootstrap stably.  The other
factors are marginalised (their effect widens the interval); the pair heatmap and the dashboard's
parameter plane show them.  The fit is L2-regularised on the standardised z (``C = 100``: weak, yet
finite when the seeds are separable, as they often are: then x* falls in the gap between the
largest stable and the smallest divergent value instead of the slope running off to infinity;
a stronger penalty, C = 10, keeps the slope shallow and lets the class balance pull x* towards
the rarer class: on a synthetic boundary its error was 0.10 decades against 0.08 for C = 100,
and C from 100 to 1e5 gave the same).

``status``: ``estimated``; ``never_diverged`` / ``always_diverged`` when a level has one outcome
only (x* is outside the range tried: beyond ``max`` / below ``min``); ``too_few`` under
``MIN_UNITS`` seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.analysis.compare import level_label
from pinnlab.analysis.survival import units

__all__ = ["METHOD", "N_BOOT", "critical_value", "fit_boundary", "numeric_factors", "group_factor",
           "boundary_rows", "boundary_report"]

METHOD = (
    "logistic fit of P(divergent) per seed against the factor (log10 for log ranges), per level of the most "
    "important categorical factor; critical value where P = 0.5; 95% percentile bootstrap over seeds"
)
N_BOOT = 200  # percentiles at 2.5 % / 97.5 % need ~200 resamples; ~0.3 s per fit group
C = 100.0  # inverse L2 strength on the standardised z (see the module docstring)
MIN_VALUES = 3  # a numeric factor with fewer distinct values is a category, not a range to fit
MIN_UNITS = 4  # fewer seeds than this in a level: no estimate


def _is_log(values: np.ndarray, spec: dict[str, Any] | None) -> bool:
    spec = spec or {}
    if "log" in spec and spec.get("choices") is None:
        return bool(spec["log"])
    return bool(values.min() > 0 and values.max() / values.min() > 100)  # compare.factor_levels' rule


def critical_value(z: np.ndarray, y: np.ndarray) -> tuple[float | None, str]:
    """(z* where the fitted P = 0.5, direction) for features z and 0/1 labels y; (None, status)
    when y has one value."""
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():
        return None, "always_diverged" if y[0] else "never_diverged"
    mu, sd = float(z.mean()), float(z.std()) or 1.0
    model = LogisticRegression(C=C).fit(((z - mu) / sd).reshape(-1, 1), y)
    b, a = float(model.coef_[0, 0]), float(model.intercept_[0])
    if b == 0:
        return None, "no_trend"
    return mu + sd * (-a / b), "increasing" if b > 0 else "decreasing"


def _from_log10(v: float) -> float:
    """10**v, inf past the float range: a bootstrap fit on nearly separable data can put its
    boundary hundreds of decades away, an interval without an upper end rather than an error."""
    with np.errstate(over="ignore"):
        return np.power(10.0, v)


def fit_boundary(x: np.ndarray, y: np.ndarray, log: bool, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Critical value of x with its bootstrap interval (module docstring); x > 0 when ``log``."""
    x, y = np.asarray(x, float), np.asarray(y, int)
    row: dict[str, Any] = {"n": int(len(y)), "diverged": int(y.sum()), "min": float(x.min()) if len(x) else None,
                           "max": float(x.max()) if len(x) else None, "log": log, "critical": None,
                           "low": None, "high": None, "direction": None, "status": "too_few"}
    if len(y) < MIN_UNITS:
        return row
    z = np.log10(x) if log else x
    back = _from_log10 if log else (lambda v: v)
    est, how = critical_value(z, y)
    if est is None:
        row["status"] = how
        return row
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(len(y), size=len(y))
        b, _how = critical_value(z[idx], y[idx])
        if b is not None:
            boot.append(b)
    row.update(critical=float(back(est)), direction=how, status="estimated")
    if n_boot and len(boot) >= n_boot / 2:
        lo, hi = np.percentile(boot, [2.5, 97.5])
        row.update(low=float(back(lo)), high=float(back(hi)))
    return row


def numeric_factors(trials: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """The factors whose values are numbers with at least MIN_VALUES distinct values."""
    out = []
    for f in factors:
        v = trials[f].dropna()
        if len(v) and pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v) \
                and v.nunique() >= MIN_VALUES:
            out.append(f)
    return out


def group_factor(ranked: Sequence[str], space: dict[str, dict] | None, exclude: str) -> str | None:
    """The first factor of ``ranked`` (most important first) with choices, other than ``exclude``."""
    for f in ranked:
        if f != exclude and (space or {}).get(f, {}).get("choices") is not None:
            return f
    return None


def boundary_rows(
    u: pd.DataFrame, x: str, group: str | None, space: dict[str, dict] | None = None, *, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per level of ``group`` (one ``(all)`` row without a group) for factor ``x`` over units ``u``."""
    u = u[u[x].notna()]
    if u.empty:
        return []
    log = _is_log(u[x].to_numpy(float), (space or {}).get(x))
    parts = [("(all)", u)] if group is None else list(u.groupby(group, observed=True, sort=True))
    rows = []
    for level, g in parts:
        fit = fit_boundary(g[x].to_numpy(float), g["event"].to_numpy(int), log, seed=seed)
        rows.append({"factor": x, "group": group or "(all)", "level": level_label(level), **fit})
    return rows


def boundary_report(
    trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None, ranked: Sequence[str]
) -> dict[str, Any]:
    """The ``boundary`` section of ``pinnlab report``: ``method`` and ``rows`` (one per numeric factor and
    level of its group factor).  ``ranked``: the factors, most important first."""
    u = units(trials, factors)
    rows: list[dict[str, Any]] = []
    if not u.empty:
        for x in numeric_factors(u, factors):
            rows += boundary_rows(u, x, group_factor(ranked, space, x), space)
    for r in rows:
        for k in ("critical", "low", "high"):
            if r[k] is not None and not math.isfinite(r[k]):
                r[k] = None
    return {"method": METHOD, "rows": rows}
