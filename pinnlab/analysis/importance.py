"""What drives divergence: how much each factor tells about whether a trial diverges.

Method: chance-adjusted uncertainty coefficient (Theil's U)
----------------------------------------------------------
For a factor F (its levels as in :func:`pinnlab.analysis.compare.factor_levels`) and the outcome
D = diverged (diverging / nan / blowup / unbounded) or not, over EVERY trial that reached a verdict (stable,
silent_failure and the divergent ones; Optuna prunes the divergent trials, so its importance
evaluators, which read COMPLETE trials only, never see them):

* ``mutual_info_bits``  I(F; D), from the contingency table of levels × diverged;
* ``uncertainty``       U = I(F; D) / H(D) in [0, 1]: the fraction of the uncertainty about
  "does it diverge?" that knowing F removes (1: F alone decides it; 0: independent);
* ``chance``            E[U] when D is shuffled over the trials (``n_permutations`` shuffles);
  a factor with many levels scores above 0 on a few trials by chance alone;
* ``importance``        (U − chance) / (1 − chance): the chance-adjusted U (as adjusted mutual
  information does for clusterings); ≤ 0 means no more than chance.  Factors are ranked by it;
* ``p_value``           share of the shuffles with I ≥ the observed one (with the +1 correction);
* ``rate_spread``       max − min divergence rate over the factor's levels (in the rates' units).

Why this and not a fitted model: a sweep has tens of trials; a random forest's (permutation)
importance on that many points varies from seed to seed and needs a model that pinnlab would
have to tune and depend on (scikit-learn).  The contingency-table quantities above are exact for
the data, need no model, see non-monotone effects (divergence only at mid learning rates) as
well as monotone ones, read in a unit (bits, share of uncertainty) and come with a chance level
and a p-value that say when the sample is too small to tell.  Their limit: each factor is scored
on its own.  An effect that exists only in combination shows up in the pair table of divergence
rates instead (``divergence_by_pair``), and factors that a sampler varied together (TPE
concentrates on good regions) share their credit: a grid or random sampler gives clean answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.analysis.compare import factor_levels, judged
from pinnlab.core.outcomes import DIVERGENT

__all__ = ["METHOD", "JUSTIFICATION", "divergence_importance", "top_factors"]

METHOD = "chance-adjusted uncertainty coefficient U(diverged | factor) = I(factor; diverged) / H(diverged)"
JUSTIFICATION = (
    "Computed over every trial with an outcome, divergent (pruned) ones included; Optuna's importance "
    "evaluators use COMPLETE trials only and so never see a divergent trial. U is the share of the "
    "uncertainty about 'does it diverge?' that knowing the factor removes (0 = independent, 1 = decides it); "
    "'importance' subtracts the U that shuffled outcomes give (factors with many levels score above 0 by chance "
    "on few trials) and p_value is the share of shuffles that do as well. Exact for the data, no fitted model "
    "(a random forest's importance is unstable on the tens of trials of a sweep), sees non-monotone effects. "
    "Each factor is scored alone: see the pair table for combinations."
)
N_PERMUTATIONS = 1000  # p-values to ~±0.01 at 0.05; ~50 ms for 5 factors × 100 trials


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _mutual_info(codes: np.ndarray, d: np.ndarray, k: int) -> float:
    """I(F; D) in bits from level codes 0..k-1 and a 0/1 outcome."""
    table = np.bincount(codes * 2 + d, minlength=2 * k).reshape(k, 2).astype(float)
    n = table.sum()
    pf = table.sum(1, keepdims=True) / n
    pd_ = table.sum(0, keepdims=True) / n
    p = table / n
    ok = p > 0
    return float((p[ok] * np.log2(p[ok] / (pf @ pd_)[ok])).sum())


def divergence_importance(
    trials: pd.DataFrame,
    factors: Sequence[str],
    space: dict[str, dict] | None = None,
    *,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per factor, most important first (columns: module docstring, plus ``levels``, ``n``).

    With no variation in the outcome (no trial diverged, or all did) there is nothing to explain:
    every score is 0 and ``p_value`` is 1.
    """
    t = judged(trials)
    d = t["outcome"].isin(DIVERGENT).to_numpy().astype(int)
    h = _entropy(np.bincount(d, minlength=2).astype(float)) if len(d) else 0.0
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(d) for _ in range(n_permutations)] if h > 0 else []
    rows = []
    for f in factors:
        levels = factor_levels(t, f, (space or {}).get(f))
        present = levels.notna().to_numpy()
        codes = levels.cat.codes.to_numpy()[present]
        k = max(len(levels.cat.categories), 1)
        dd = d[present]
        rates = t[present].groupby(levels[present], observed=True)["outcome"].agg(lambda o: o.isin(DIVERGENT).mean())
        row: dict[str, Any] = {
            "factor": f,
            "levels": int(len(np.unique(codes))),
            "n": int(present.sum()),
            "mutual_info_bits": 0.0,
            "uncertainty": 0.0,
            "chance": 0.0,
            "importance": 0.0,
            "p_value": 1.0,
            "rate_spread": float(rates.max() - rates.min()) if len(rates) else 0.0,
        }
        hd = _entropy(np.bincount(dd, minlength=2).astype(float)) if len(dd) else 0.0
        if hd > 0:
            mi = _mutual_info(codes, dd, k)
            null = np.array([_mutual_info(codes, p[present], k) for p in perms])
            u, chance = mi / hd, float(null.mean() / hd)
            row.update(
                mutual_info_bits=mi,
                uncertainty=u,
                chance=chance,
                importance=(u - chance) / (1 - chance) if chance < 1 else 0.0,
                p_value=float((1 + (null >= mi - 1e-12).sum()) / (1 + len(null))),
            )
        rows.append(row)
    out = pd.DataFrame(
        rows,
        columns=[
            "factor",
            "levels",
            "n",
            "mutual_info_bits",
            "uncertainty",
            "chance",
            "importance",
            "p_value",
            "rate_spread",
        ],
    )
    order = {f: i for i, f in enumerate(factors)}
    out["_order"] = out["factor"].map(order)
    out = out.sort_values(["importance", "rate_spread", "_order"], ascending=[False, False, True])
    return out.drop(columns="_order").reset_index(drop=True)


def top_factors(importance: pd.DataFrame, k: int = 2) -> list[str]:
    """The ``k`` most important factors (the table is already ranked)."""
    return importance["factor"].head(k).tolist()
