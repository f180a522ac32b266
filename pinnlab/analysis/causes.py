"""Causes in a study: how many trials each cause (pinnlab.training.causes) was found in, per factor level
and per outcome.

Read from the trials frame's ``cause_names`` column (found in the run) and ``known_causes`` column
(known from the config before training), both comma-separated summary fields
(:mod:`pinnlab.core.summary`).  A trial counts once per cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from pinnlab.analysis.compare import factor_levels, judged

__all__ = ["split_causes", "causes_by_factor", "causes_by_outcome", "cause_totals"]


def split_causes(trials: pd.DataFrame, column: str = "cause_names") -> pd.DataFrame:
    """One 0/1 column per cause name found in ``column`` (index = the trials')."""
    if column not in trials.columns:
        return pd.DataFrame(index=trials.index)
    names = trials[column].fillna("").astype(str)
    return names.str.get_dummies(sep=",")


def cause_totals(trials: pd.DataFrame, column: str = "cause_names") -> dict[str, int]:
    """Judged trials per cause."""
    d = split_causes(judged(trials), column)
    return {str(k): int(v) for k, v in d.sum().sort_index().items() if v}


def causes_by_factor(
    trials: pd.DataFrame, factors: Sequence[str], space: dict[str, dict] | None = None, column: str = "cause_names"
) -> pd.DataFrame:
    """Columns: factor, level, n, then the number of trials at that level with each cause."""
    t = judged(trials)
    d = split_causes(t, column)
    rows: list[dict[str, Any]] = []
    for f in factors:
        levels = factor_levels(t, f, (space or {}).get(f))
        for level, idx in t.groupby(levels, observed=True, sort=True).groups.items():
            rows.append(
                {"factor": f, "level": level, "n": len(idx), **{c: int(d.loc[idx, c].sum()) for c in d.columns}}
            )
    return pd.DataFrame(rows, columns=["factor", "level", "n", *d.columns])


def causes_by_outcome(trials: pd.DataFrame, column: str = "cause_names") -> pd.DataFrame:
    """Columns: outcome, cause, n (judged trials with that outcome in which the cause was found)."""
    t = judged(trials)
    d = split_causes(t, column)
    if d.empty:
        return pd.DataFrame(columns=["outcome", "cause", "n"])
    long = d.join(t["outcome"]).melt(id_vars="outcome", var_name="cause", value_name="n")
    out = long.groupby(["outcome", "cause"], as_index=False)["n"].sum()
    return out[out["n"] > 0].reset_index(drop=True)
