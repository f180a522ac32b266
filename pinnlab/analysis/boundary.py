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

__all__ = [
    "METHOD",
    "N_BOOT",
    "critical_value",
    "fit_boundary",
    "numeric_factors",
    "group_factor",
    "boundary_rows",
    "boundary_report",
]

METHOD = (
    "logistic fit of P(divergent) per seed against the factor (log10 for log ranges), per level of the most "
    "important categorical factor; critical value where P = 0.5; 95% percentile bootstrap over seeds"
)
N_BOOT = 200  # percentiles at 2.5 % / 97.5 % need ~200 resamples, fitted together (one array operation)
C = 100.0  # inverse L2 strength on the standardised z (see the module docstring)
MIN_VALUES = 3  # a numeric factor with fewer distinct values is a category, not a range to fit
MIN_UNITS = 4  # fewer seeds than this in a level: no estimate


def _is_log(values: np.ndarray, spec: dict[str, Any] | None) -> bool:
    spec = spec or {}
    if "log" in spec and spec.get("choices") is None:
        return bool(spec["log"])
    return bool(values.min() > 0 and values.max() / values.min() > 100)  # compare.factor_levels' rule


def _logistic_fits(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intercepts and slopes ``(a, b)`` of B weighted logistic fits at once, by Newton's method.

    ``z``, ``y``: the n points (features, 0/1 labels); ``w``: ``(B, n)`` point weights (a bootstrap
    resample's counts).  Each fit minimises ``b²/2 + C·Σᵢ wᵢ·log(1 + exp(-sᵢ(a + b·zᵢ)))``
    (sᵢ = ±1; the intercept unpenalised), scikit-learn's ``LogisticRegression(C=C)`` objective, to
    machine precision: strictly convex when both labels have weight, so Newton's steps with
    step-halving converge in a few iterations, for all B resamples in one array operation.
    """
    s = 2.0 * y - 1.0
    theta = np.zeros((w.shape[0], 2))

    def objective(t):
        m = s * (t[:, :1] + t[:, 1:] * z)
        return 0.5 * t[:, 1] ** 2 + C * np.sum(w * np.logaddexp(0.0, -m), axis=1)

    f = objective(theta)
    for _ in range(100):
        m = s * (theta[:, :1] + theta[:, 1:] * z)
        p = 0.5 * (1.0 + np.tanh(-0.5 * m))  # sigmoid(-m), without overflow
        g = -C * w * s * p  # d loss / d(a + b z) per point
        h = C * w * p * (1.0 - p)
        ga, gb = g.sum(1), (g * z).sum(1) + theta[:, 1]
        haa, hab, hbb = h.sum(1), (h * z).sum(1), (h * z * z).sum(1) + 1.0
        det = haa * hbb - hab**2
        step = np.stack([(hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det], axis=1)
        t = np.ones(len(theta))
        for _ in range(30):  # halve until the objective does not rise
            new = objective(theta - t[:, None] * step)
            ok = new <= f
            if ok.all():
                break
            t = np.where(ok, t, 0.5 * t)
        theta, f = theta - t[:, None] * step, np.minimum(new, f)
        if np.max(np.abs(t[:, None] * step)) < 1e-12:
            break
    return theta[:, 0], theta[:, 1]


def _critical_values(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of weights ``w`` (B, n): z* where the fitted P = 0.5 (NaN when the weighted
    labels have one value or the slope is 0) and the slope's sign, on the weighted standardised z."""
    total = w.sum(1)
    both = ((w * y).sum(1) > 0) & ((w * (1 - y)).sum(1) > 0)
    mu = (w * z).sum(1) / total
    sd = np.sqrt((w * (z - mu[:, None]) ** 2).sum(1) / total)
    sd = np.where(sd > 0, sd, 1.0)
    a, b = _logistic_fits((z - mu[:, None]) / sd[:, None], y, np.where(both[:, None], w, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = np.where(both & (b != 0), mu + sd * (-a / b), np.nan)
    return crit, np.sign(b)


def critical_value(z: np.ndarray, y: np.ndarray) -> tuple[float | None, str]:
    """(z* where the fitted P = 0.5, direction) for features z and 0/1 labels y; (None, status)
    when y has one value."""
    z, y = np.asarray(z, float), np.asarray(y, int)
    if y.min() == y.max():
        return None, "always_diverged" if y[0] else "never_diverged"
    crit, sign = _critical_values(z, y, np.ones((1, len(y))))
    if not np.isfinite(crit[0]):
        return None, "no_trend"
    return float(crit[0]), "increasing" if sign[0] > 0 else "decreasing"


def _from_log10(v: float) -> float:
    """10**v, inf past the float range: a bootstrap fit on nearly separable data can put its
    boundary hundreds of decades away, an interval without an upper end rather than an error."""
    with np.errstate(over="ignore"):
        return np.power(10.0, v)


def fit_boundary(x: np.ndarray, y: np.ndarray, log: bool, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Critical value of x with its bootstrap interval (module docstring); x > 0 when ``log``."""
    x, y = np.asarray(x, float), np.asarray(y, int)
    row: dict[str, Any] = {
        "n": int(len(y)),
        "diverged": int(y.sum()),
        "min": float(x.min()) if len(x) else None,
        "max": float(x.max()) if len(x) else None,
        "log": log,
        "critical": None,
        "low": None,
        "high": None,
        "direction": None,
        "status": "too_few",
    }
    if len(y) < MIN_UNITS:
        return row
    z = np.log10(x) if log else x
    back = _from_log10 if log else (lambda v: v)
    est, how = critical_value(z, y)
    if est is None:
        row["status"] = how
        return row
    rng = np.random.default_rng(seed)
    counts = np.array([np.bincount(rng.integers(len(y), size=len(y)), minlength=len(y)) for _ in range(n_boot)])
    boot = _critical_values(z, y, counts.reshape(n_boot, len(y)).astype(float))[0] if n_boot else np.array([])
    boot = boot[np.isfinite(boot)]
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
        if (
            len(v)
            and pd.api.types.is_numeric_dtype(v)
            and not pd.api.types.is_bool_dtype(v)
            and v.nunique() >= MIN_VALUES
        ):
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
