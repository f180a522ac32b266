"""Search spaces: dotted config paths -> ``trial.suggest_*``, applied by generic code.

A trial's parameters are named by their config path (``model.activation``), so Optuna's storage,
MLflow's tags and pinnlab's analysis all use the same names, and nothing maps parameters one by one.
"""

from __future__ import annotations

from typing import Any

import optuna

from pinnlab.sweep.spec import ParamSpec

__all__ = ["suggest", "grid_space"]


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
