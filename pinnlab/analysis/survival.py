"""Time to divergence as survival curves: how soon training fails, counting the runs that did not.

A run's *event* is divergence (outcome nan, blowup or unbounded) at the step it was detected
(``divergence_step``, else ``nan_onset_step``).  A run that finished its budget without diverging
(stable, silent_failure) or was stopped early by a callback is *censored* at its ``steps_run``: it
survived at least that long, and nothing is known after.  Dropping those runs (as a table of onset
steps over the divergent trials does) makes failure look earlier and more certain than it is;
counting them as "never" ignores that a longer budget might have seen them fail.  The
Kaplan–Meier estimator (lifelines' ``KaplanMeierFitter``) uses both: S(t) is the probability that a
run is still training without divergence after step t.

Units: one per *seed*.  With ``replicates: k`` every seed of a trial is a unit (its outcome, onset
and steps from the trial's ``replicate_*`` attributes, see :mod:`pinnlab.config.replicates`); a trial without
replicates is one unit.  Unjudged trials (crash, retried, surplus, unfinished) are left out.

Per level of each factor (levels as in :func:`pinnlab.analysis.compare.factor_levels`, computed on
the units) and for ``(all)``:

* ``n``, ``diverged`` (events), ``censored``;
* ``median_step``: the first step at which S(t) <= 0.5, None when more than half survive ("not
  reached": report it as "> the largest step");
* ``median_low`` / ``median_high``: the same crossing of the lower / upper pointwise 95 % band
  (lifelines' ``median_survival_times`` of the confidence interval; the band is Greenwood's
  variance on the log(-log S) scale, which keeps it inside [0, 1]);
* ``survival_end``: S at the last observed step, the share expected to survive the budget.

``curves``: per factor and level, the step function (``step``, ``survival``, ``low``, ``high``) that
the dashboard draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.analysis.compare import factor_levels, judged, level_label
from pinnlab.config.replicates import onset
from pinnlab.core import keys
from pinnlab.core.outcomes import Outcome

__all__ = ["METHOD", "CONFIDENCE", "units", "km_table", "survival_report"]

METHOD = (
    "Kaplan-Meier estimate of P(no divergence by step t), per seed; runs that did not diverge are "
    "censored at their steps_run; 95% pointwise band (Greenwood, log(-log) transform)"
)
CONFIDENCE = 0.95  # the usual level; the band says how much the median step could move


def _unit(row: pd.Series, outcome: Any, on: Any, steps: Any) -> dict[str, Any] | None:
    o = Outcome.parse(outcome)
    if o is None or not o.judged:
        return None
    event = o.divergent
    duration = on if event and on is not None and not pd.isna(on) else steps
    if duration is None or pd.isna(duration):
        return None
    return {"trial": int(row["trial"]), "outcome": str(o), "event": bool(event), "step": int(duration)}


def _present(row: pd.Series) -> dict[str, Any]:
    """The row without its missing values (NaN / NA), so that ``onset`` falls back as it should."""
    return {k: v for k, v in row.items() if isinstance(v, (list, tuple, dict)) or not pd.isna(v)}


def units(trials: pd.DataFrame, factors: Sequence[str] = ()) -> pd.DataFrame:
    """One row per seed: ``trial``, ``seed`` (index within the trial), the factors, ``outcome``,
    ``event`` (diverged) and ``step`` (divergence step, or steps run when censored)."""
    rows = []
    for _, row in judged(trials).iterrows():
        outcomes = row.get(keys.REPLICATE_OUTCOMES_ATTR)
        if isinstance(outcomes, list) and outcomes:
            onsets = row.get(keys.REPLICATE_ONSETS_ATTR) or [None] * len(outcomes)
            steps = row.get(keys.REPLICATE_STEPS_ATTR) or [None] * len(outcomes)
            seeds = [_unit(row, o, on, s) for o, on, s in zip(outcomes, onsets, steps)]
        else:
            seeds = [_unit(row, row["outcome"], onset(_present(row)), row.get("steps_run"))]
        for i, u in enumerate(seeds):
            if u is not None:
                rows.append({**u, "seed": i, **{f: row[f] for f in factors}})
    columns = ["trial", "seed", *factors, "outcome", "event", "step"]
    return pd.DataFrame(rows, columns=columns)


def _fit(durations: np.ndarray, events: np.ndarray):
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=1 - CONFIDENCE)
    kmf.fit(durations, event_observed=events, label="S")
    return kmf


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _median_ci(kmf) -> tuple[float | None, float | None]:
    """Where the lower and upper bands cross 0.5: the 95 % interval of the median step."""
    from lifelines.utils import median_survival_times

    ci = median_survival_times(kmf.confidence_interval_)
    return _num(ci.iloc[0, 0]), _num(ci.iloc[0, 1])


def km_table(u: pd.DataFrame, by: pd.Series | None = None) -> tuple[list[dict], list[dict]]:
    """(rows, curves) of the units ``u``, one per group of ``by`` (one group when None)."""
    groups = [("(all)", u)] if by is None else [(lvl, g) for lvl, g in u.groupby(by, observed=True)]
    rows, curves = [], []
    for level, g in groups:
        if g.empty:
            continue
        kmf = _fit(g["step"].to_numpy(float), g["event"].to_numpy(bool))
        low, high = _median_ci(kmf)
        sf = kmf.survival_function_["S"]
        band = kmf.confidence_interval_
        n_events = int(g["event"].sum())
        rows.append(
            {
                "level": level_label(level),
                "n": int(len(g)),
                "diverged": n_events,
                "censored": int(len(g) - n_events),
                "median_step": _num(kmf.median_survival_time_),
                "median_low": low,
                "median_high": high,
                "survival_end": _num(sf.iloc[-1]),
            }
        )
        curves.append(
            {
                "level": level_label(level),
                "step": [float(t) for t in sf.index],
                "survival": [float(v) for v in sf.to_numpy()],
                "low": [float(v) for v in band.iloc[:, 0].to_numpy()],
                "high": [float(v) for v in band.iloc[:, 1].to_numpy()],
            }
        )
    return rows, curves


def survival_report(
    trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None = None
) -> dict[str, Any]:
    """The ``survival`` section of ``pinnlab report``: ``method``, ``confidence``, ``rows`` (per factor
    and level, ``(all)`` first) and ``curves`` (module docstring)."""
    u = units(trials, factors)
    rows: list[dict] = []
    curves: list[dict] = []
    if not u.empty:
        for factor, by in [("(all)", None), *[(f, factor_levels(u, f, (space or {}).get(f))) for f in factors]]:
            r, c = km_table(u, by)
            rows += [{"factor": factor, **x} for x in r]
            curves += [{"factor": factor, **x} for x in c]
    return {"method": METHOD, "confidence": CONFIDENCE, "rows": rows, "curves": curves}
