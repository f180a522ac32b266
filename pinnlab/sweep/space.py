"""Search spaces: dotted config paths -> ``trial.suggest_*``, applied by generic code.

A trial's parameters are named by their config path (``model.activation``), so Optuna's storage,
MLflow's tags and pinnlab's analysis all use the same names, and nothing maps parameters one by one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:  # annotations only: the spec module validates spaces with corners()
    from pinnlab.sweep.spec import ParamSpec

__all__ = ["suggest", "grid_space", "corners", "MAX_CORNERS"]

# The whole product of the corner values is checked up to this many configs (a config and its
# metrics take about half a millisecond: a second); a larger space is checked pairwise instead, on at
# most twice as many configs, so a sweep file is checked within seconds whatever its size.
MAX_CORNERS = 2048


def _suggest_one(trial: optuna.Trial, name: str, p: ParamSpec) -> Any:
    if p.kind == "categorical":
        return trial.suggest_categorical(name, p.choices)
    if p.kind == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Sample every dimension; returns ``{dotted.path: value}`` ready for ``apply_overrides``."""
    return {name: _suggest_one(trial, name, p) for name, p in space.items()}


def grid_space(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """The search space as Optuna's GridSampler wants it."""
    return {name: p.grid() for name, p in space.items()}


def corners(space: dict[str, ParamSpec]) -> Iterator[dict[str, Any]]:
    """The configs that stand for the whole space when validating it: every categorical choice with
    both ends of every numeric range (``ParamSpec.ends``).

    Config validation rejects a value by a bound or a name, and a combination by a rule between
    fields (steps with epochs, L-BFGS with adaptive weighting): a numeric field invalid somewhere
    inside its range is invalid at an end, so the corners find every rejection a trial can meet.
    The full product is yielded while it has at most :data:`MAX_CORNERS` configs; beyond that,
    every pair of dimensions at all their pairs of values, the other dimensions at their first
    value, which still finds every rule between two fields (a rule needing three, not always), up to
    ``2 * MAX_CORNERS`` configs (pairs of the first dimensions first).
    """
    names = list(space)
    values = [space[n].ends() for n in names]
    if math.prod(len(v) for v in values) <= MAX_CORNERS:
        for combo in itertools.product(*values):
            yield dict(zip(names, combo))
        return
    first = {n: v[0] for n, v in zip(names, values)}
    pairs = (
        {**first, a: va, b: vb}
        for (i, a), (j, b) in itertools.combinations(enumerate(names), 2)
        for va, vb in itertools.product(values[i], values[j])
    )
    yield from itertools.islice(pairs, 2 * MAX_CORNERS)
