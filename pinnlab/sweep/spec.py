"""Sweep files: a base config plus a search space over dotted config paths.

A sweep file is YAML::

    # Question: ...            (each shipped sweep says what it answers and how to run it)
    base: seed                 # preset or run-config file (relative to the sweep file)
    overrides:                 # dotted path -> value, applied to the base before the space
      training.epochs: 10
    space:                     # dotted path -> distribution
      model.activation: {choices: [relu, tanh]}
      model.width: {low: 5, high: 100, log: true}           # int: both bounds are ints
      optimizer.learning_rate: {low: 1.0e-3, high: 0.1, log: true}
    objective: {metric: heldout_residual, direction: minimize}
    sampler: {name: tpe, seed: 0}                            # tpe | random | grid | boundary
    replicates: 1                                            # seeds per configuration
    pruner: {name: none}                                     # none | median | halving (+ metric)
    n_trials: 24
    study_name: seed_divergence                              # default: the file's stem
    smoke: {n_trials: 3, overrides: {training.steps: 20}}    # what --smoke runs

Validated once, before anything starts: every space path is applied at both ends of its range to
the base config and validated like a run config, so a bad path or value fails as one line naming
``space.<path>``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pinnlab.config import (
    MAX_SEED,
    Bool,
    Int,
    RunConfig,
    StrictModel,
    apply_overrides,
    config_error_from_validation,
    load_yaml,
    resolve_bases,
    validate_config,
)
from pinnlab.errors import ConfigError
from pinnlab.preflight import check_name
from pinnlab.summary import OBJECTIVE_METRICS  # what a trial can be judged by, besides history metrics

__all__ = ["SweepSpec", "ParamSpec", "load_sweep", "OBJECTIVE_METRICS", "MAX_TRIALS"]

# Every slot of the budget is a queued trial in the storage, written when the study is created.
MAX_TRIALS = 100_000



class ParamSpec(StrictModel):
    """One search dimension: ``choices`` (categorical) or ``low``/``high`` (int or float)."""

    choices: list[Any] | None = None
    low: int | float | None = None
    high: int | float | None = None
    log: Bool = False
    step: int | float | None = Field(None, gt=0)
    type: Literal["int", "float"] | None = None  # default: int if low and high are both ints

    @model_validator(mode="after")
    def _check(self):
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices: [...] or both low and high")
        if not self.low <= self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined (Optuna's rule)")
        return self

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "categorical"
        if self.type is not None:
            return self.type
        ints = isinstance(self.low, int) and isinstance(self.high, int)
        return "int" if ints and (self.step is None or float(self.step).is_integer()) else "float"

    def ends(self) -> list[Any]:
        """Values at the ends of the range (every choice for categoricals), for validation."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]

    def grid(self) -> list[Any]:
        """Every value, for the grid sampler."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None:
            raise ValueError("a grid over a numeric range needs `step` (or use choices)")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        cast = int if self.kind == "int" else float
        return [cast(self.low + i * self.step) for i in range(n)]


class ObjectiveSpec(StrictModel):
    metric: str = "final_loss"
    direction: Literal["minimize", "maximize"] = "minimize"


class SamplerSpec(StrictModel):
    name: Literal["tpe", "random", "grid", "boundary"] = "tpe"
    seed: Int = Field(0, ge=0, le=MAX_SEED)  # worker i seeds its sampler with seed + i (NumPy: < 2**32)
    # boundary only (pinnlab.sweep.boundary_sampler, whose docstring gives the reasons)
    n_startup: Int = Field(0, ge=0)  # stratified random trials first (0: start at the centre)
    n_bisect: Int = Field(4, ge=2)  # labels per level bisected before the GP takes over
    explore: float = Field(0.2, ge=0, le=1)  # share of the GP phase's trials drawn at random


class PrunerSpec(StrictModel):
    """Optuna pruning on an intermediate metric, on top of the built-in divergence pruning."""

    name: Literal["none", "median", "halving"] = "none"
    metric: str = "loss/total"  # a history metric reported at every diagnostics step
    warmup_steps: Int = Field(0, ge=0)


class SmokeSpec(StrictModel):
    n_trials: Int = Field(3, gt=0)
    overrides: dict[str, Any] = Field(
        default_factory=lambda: {"training.steps": 20, "diagnostics.every": 10, "divergence.heldout_points": 256}
    )


class SweepSpec(StrictModel):
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, ParamSpec]
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    n_trials: Int = Field(20, gt=0, le=MAX_TRIALS)
    replicates: Int = Field(1, gt=0, le=100)  # seeds per trial (pinnlab.replicates); 100: a rate to 1 %
    study_name: str
    experiment: str | None = None  # MLflow experiment; default: the study name
    smoke: SmokeSpec = Field(default_factory=SmokeSpec)
    # Not from YAML: the base config resolved (with overrides) to a plain mapping, so workers on
    # other machines need neither the file nor its base.
    base_config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _space(cls, value):
        if not value:
            raise ValueError("{} is not allowed: name at least one dotted config path to vary, "
                             "e.g. model.width: {low: 10, high: 100}")
        return value

    @field_validator("study_name", "experiment")
    @classmethod
    def _names(cls, value, info):
        return check_name(info.field_name, value)

    def trial_config(self, params: dict[str, Any], extra: dict[str, Any] | None = None) -> RunConfig:
        """The run config of one trial: base, then ``extra`` (smoke), then the sampled params."""
        data = apply_overrides(self.base_config, list((extra or {}).items()))
        return validate_config(apply_overrides(data, list(params.items())))

    def for_smoke(self) -> SweepSpec:
        data = self.model_dump()
        data["study_name"] = f"{self.study_name}-smoke"
        data["n_trials"] = self.smoke.n_trials
        data["base_config"] = apply_overrides(self.base_config, list(self.smoke.overrides.items()))
        try:
            return SweepSpec.model_validate(data)
        except ValidationError as exc:  # e.g. a study name at the length limit, before "-smoke"
            raise config_error_from_validation(exc, SweepSpec) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        return cls.model_validate(data)


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep file; ``overrides`` replace top-level entries (e.g. n_trials)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({getattr(exc, 'strerror', None) or exc.reason})"
        raise ConfigError("", f"sweep file {str(path)[:200]!r} {why}") from None
    data = load_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must be a YAML mapping, got {type(data).__name__}")
    data.setdefault("study_name", path.stem)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "base_config" in data:
        raise ConfigError("base_config", "unknown key (it is filled in from `base`)")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(exc, SweepSpec) from None
    try:
        base = resolve_bases(spec.base, path.parent)
    except ConfigError as exc:
        if exc.field:
            raise
        raise ConfigError("base", f"{exc.message} (the base of {path})") from None
    try:
        base = apply_overrides(base, list(spec.overrides.items()))
        validate_config(base)
    except ConfigError as exc:
        raise ConfigError(f"overrides.{exc.field}" if exc.field else "base", exc.message) from None
    for name, param in spec.space.items():
        for value in param.ends():
            try:
                validate_config(apply_overrides(base, [(name, value)]))
            except ConfigError as exc:
                raise ConfigError(f"space.{name}", f"value {value!r}: {exc}") from None
        if spec.sampler.name == "grid":
            try:
                param.grid()
            except ValueError as exc:
                raise ConfigError(f"space.{name}", str(exc)) from None
    try:
        validate_config(apply_overrides(base, list(spec.smoke.overrides.items())))
    except ConfigError as exc:
        raise ConfigError(f"smoke.overrides.{exc.field}", exc.message) from None
    if spec.replicates > 1 and spec.pruner.name != "none":  # why: pinnlab.sweep.replicate_trial
        raise ConfigError("pruner.name", f"{spec.pruner.name!r} is not allowed with replicates {spec.replicates}: use none")
    metric = spec.objective.metric
    if metric not in OBJECTIVE_METRICS and "/" not in metric:
        raise ConfigError(
            "objective.metric",
            f"{metric!r} is not one of {', '.join(OBJECTIVE_METRICS)} or a history metric such as loss/total",
        )
    return spec.model_copy(update={"base_config": base})
