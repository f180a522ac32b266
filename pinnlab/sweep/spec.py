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

Validated once, when the file is loaded and before any study, slot or MLflow run exists, each
failure one line naming the field, the value and what is allowed:

* each dimension's shape (:class:`ParamSpec`): ranges, steps, choices;
* each space path: a single field (not a section), not also set in ``overrides``, valid at every
  choice and both ends of its range (``space.<path>``);
* every corner of the space together (:func:`pinnlab.sweep.space.corners`: categorical choices
  with the ends of numeric ranges) validated as ``pinnlab run`` validates a config, the failure
  naming the dimensions and values that matter (``space: trials with optimizer.name='lbfgs',
  loss.weighting.scheme='grad_norm' are invalid: ...``);
* ``objective.metric`` produced by every corner's config, ``pruner.metric`` by some
  (:func:`pinnlab.sweep.metrics.objective_metrics`), else the allowed names are listed;
* the smoke variant (:meth:`SweepSpec.for_smoke`): its corners again, with the smoke overrides.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from pinnlab.config import (
    MAX_SEED,
    Bool,
    Int,
    RunConfig,
    StrictModel,
    apply_overrides,
    config_error_from_validation,
    read_yaml_file,
    resolve_bases,
    validate_config,
)
from pinnlab.config.sources import EXCLUSIVE
from pinnlab.core.errors import ConfigError
from pinnlab.core.preflight import check_name
from pinnlab.core.summary import OBJECTIVE_METRICS  # what a trial can be judged by, besides history metrics
from pinnlab.sweep.metrics import objective_metrics, pruner_metrics

__all__ = ["SweepSpec", "ParamSpec", "load_sweep", "OBJECTIVE_METRICS", "MAX_TRIALS"]

# Every slot of the budget is a queued trial in the storage, written when the study is created.
MAX_TRIALS = 100_000
# Each choice is validated as a config (and paired with the other dimensions' values), and no sampler
# learns anything about a categorical of thousands of levels from a budget of trials.
MAX_CHOICES = 1000


class ParamSpec(StrictModel):
    """One search dimension: ``choices`` (categorical) or ``low``/``high`` (int or float).

    Checked here, on the dimension alone: choices are scalars of one type (null aside), without
    duplicates (Optuna finds a choice by equality, so ``1`` and ``1.0`` or ``true`` and ``1`` are
    one choice); bounds are numbers, not booleans; ``low < high`` (a zero-width range is a constant:
    it belongs in ``overrides``, or in ``choices: [v]`` to keep it a parameter column); ``step`` is at
    most the range and divides it (Optuna would silently lower ``high``); ``type: int`` has integral
    bounds and step.
    """

    choices: list[Any] | None = None
    low: int | float | None = None
    high: int | float | None = None
    log: Bool = False
    step: int | float | None = Field(None, gt=0)
    type: Literal["int", "float"] | None = None  # default: int if low and high are both ints

    @field_validator("low", "high", "step", mode="before")
    @classmethod
    def _number(cls, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{value!r} is not allowed: a bound or step is a number (int or float)")
        return value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo):
        # A spec read back from a study (``SweepSpec.from_dict``) passes Optuna's own rules only: a
        # study an earlier pinnlab created with a laxer file must stay joinable by its workers.
        stored = bool(info.context and info.context.get("stored"))
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices or low/high (with step, log), not both")
            if not self.choices:
                raise ValueError("choices: [] is not allowed: give at least one choice")
            if not stored:
                _check_choices(self.choices)
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices: [...] or both low and high")
        low, high, step = self.low, self.high, self.step
        if low > high:
            raise ValueError(f"`low <= high` must hold, but got (low={low}, high={high})")
        if self.log and low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={low}")
        if self.log and step is not None:
            raise ValueError("step and log cannot be combined (Optuna's rule)")
        if not stored:
            _check_range(low, high, step, self.type)
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

    def grid_size(self) -> int:
        """How many values :meth:`grid` has (without building them)."""
        if self.choices is not None:
            return len(self.choices)
        if self.step is None:
            raise ValueError("a grid over a numeric range needs `step` (or use choices)")
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def grid(self) -> list[Any]:
        """Every value, for the grid sampler."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low + i * self.step) for i in range(self.grid_size())]


def _check_choices(choices: list[Any]) -> None:
    if len(choices) > MAX_CHOICES:
        raise ValueError(f"{len(choices)} choices are not allowed: at most {MAX_CHOICES} (a range covers more values)")
    kinds = set()
    for choice in choices:
        kind = _choice_kind(choice)
        if kind is None:
            raise ValueError(
                f"choice {choice!r} is not allowed: a choice is one value (null, true/false, a number or a "
                "string), not a mapping or list; to vary a section, vary each of its fields"
            )
        kinds.add(kind)
    kinds.discard("null")
    if len(kinds) > 1:
        raise ValueError(f"choices {choices!r} are not allowed: they mix {' and '.join(sorted(kinds))}; give one type")
    for i, choice in enumerate(choices):
        if any(_choice_kind(c) == _choice_kind(choice) and c == choice for c in choices[:i]):
            raise ValueError(f"choices {choices!r} are not allowed: {choice!r} is given twice; give each choice once")


def _check_range(low: float, high: float, step: float | None, kind: str | None) -> None:
    if low == high:
        raise ValueError(
            f"low = high = {low} is not a range: a constant belongs in overrides (or choices: [{low}] to keep it a "
            "parameter)"
        )
    if kind == "int":
        bad = [
            f"{k}={v}"
            for k, v in (("low", low), ("high", high), ("step", step))
            if v is not None and not float(v).is_integer()
        ]
        if bad:
            raise ValueError(f"type int needs integral bounds and step, got {', '.join(bad)}")
    if step is not None:
        # Decimal of the printed values, as Optuna checks divisibility (0.3 - 0.1 is not 0.2 in floats)
        d_low, d_step = Decimal(str(low)), Decimal(str(step))
        width = Decimal(str(high)) - d_low
        if d_step > width:
            raise ValueError(f"step {step} is larger than the range high - low = {width}: only low would be sampled")
        if width % d_step:
            raise ValueError(
                f"step {step} does not divide the range high - low = {width} (Optuna would lower high to "
                f"{d_low + width // d_step * d_step}); make high - low a multiple of step"
            )


def _choice_kind(value: Any) -> str | None:
    """The type of a categorical choice as Optuna stores it (None: not a scalar Optuna can store)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, (int, float)):
        return "numbers"
    if isinstance(value, str):
        return "strings"
    return None


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


MAX_BATCH = 64  # trials stacked in one step; the replicate cost curve flattens well before (docs/benchmarks.md)


class SweepSpec(StrictModel):
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, ParamSpec]
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    n_trials: Int = Field(20, gt=0, le=MAX_TRIALS)
    replicates: Int = Field(1, gt=0, le=100)  # seeds per trial (pinnlab.config.replicates); 100: a rate to 1 %
    # trials a worker asks for at a time; those that share a network shape and optimizer train as
    # replicates of one stacked step, each with its own hyperparameters (pinnlab.sweep.runner)
    batch: Int = Field(1, gt=0, le=MAX_BATCH)
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
            raise ValueError(
                "{} is not allowed: name at least one dotted config path to vary, "
                "e.g. model.width: {low: 10, high: 100}"
            )
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
            smoke = SweepSpec.model_validate(data)
        except ValidationError as exc:  # e.g. a study name at the length limit, before "-smoke"
            raise config_error_from_validation(exc, SweepSpec) from None
        default = "overrides" not in self.smoke.model_fields_set
        for name in smoke.space:  # e.g. a sampled training.epochs would undo the smoke's short budget
            _check_not_overridden(name, smoke.smoke.overrides, "smoke.overrides" + (" (by default)" if default else ""))
        _check_corners(smoke, smoke.base_config, "smoke.overrides")  # its trials are other configs
        return smoke

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        """The spec stored with a study (``to_dict``), checked by Optuna's rules only (``ParamSpec``)."""
        try:
            return cls.model_validate(data, context={"stored": True})
        except ValidationError as exc:
            raise ConfigError(
                "", f"the sweep spec stored with this study cannot be run: {config_error_from_validation(exc, cls)}"
            ) from None


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep file; ``overrides`` replace top-level entries (e.g. n_trials)."""
    path = Path(path)
    data = read_yaml_file(path, "sweep file")  # regular files only, size- and alias-limited
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
    checked = validate_config(base).to_dict()
    for name, param in spec.space.items():
        _check_path(name, checked, spec.overrides)
        for value in param.ends():
            try:
                validate_config(apply_overrides(base, [(name, value)]))
            except ConfigError as exc:
                raise ConfigError(f"space.{name}", f"value {value!r}: {exc}") from None
    if spec.sampler.name == "grid":
        _check_grid(spec.space)
    try:
        validate_config(apply_overrides(base, list(spec.smoke.overrides.items())))
    except ConfigError as exc:
        raise ConfigError(f"smoke.overrides.{exc.field}", exc.message) from None
    if spec.replicates > 1 and spec.pruner.name != "none":  # why: pinnlab.config.replicates
        raise ConfigError(
            "pruner.name", f"{spec.pruner.name!r} is not allowed with replicates {spec.replicates}: use none"
        )
    _check_corners(spec, base)
    return spec.model_copy(update={"base_config": base})


def _check_path(name: str, config: dict[str, Any], overrides: dict[str, Any]) -> None:
    """A space path is one field, sampled only here: not a section, not also set in ``overrides``."""
    node: Any = config
    for part in name.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        keys = ", ".join(node) or "none yet"
        raise ConfigError(
            f"space.{name}",
            f"is a config section (a mapping; keys: {keys}), not one value: vary its fields one by one, "
            f"e.g. {name}.<key>: {{choices: [...]}}",
        )
    _check_not_overridden(name, overrides, "overrides")


def _check_not_overridden(name: str, overrides: dict[str, Any], where: str) -> None:
    """A sampled path (or its alternative: steps / epochs) that ``overrides`` sets too: every trial
    would silently replace the override with the sampled value."""
    other = EXCLUSIVE.get(tuple(name.split(".")))
    for given in (name, ".".join(other) if other else None):
        if given in overrides:
            raise ConfigError(
                f"space.{name}",
                f"{given} is set in {where} too: every trial would replace it with the sampled value; "
                "set it in one place",
            )


def _check_grid(space: dict[str, ParamSpec]) -> None:
    """The grid sampler queues every grid point when the study is created: each numeric dimension
    needs a step, and the whole grid must be a number of trials a study can hold."""
    size = 1
    for name, param in space.items():
        try:
            size *= param.grid_size()
        except ValueError as exc:
            raise ConfigError(f"space.{name}", str(exc)) from None
    if size > MAX_TRIALS:
        raise ConfigError(
            "space",
            f"a grid of {size} points is not allowed with sampler grid: at most {MAX_TRIALS} (larger steps, "
            "fewer choices, or sampler random / tpe)",
        )


def _show(corner: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in corner.items())


def _minimal(
    corner: dict[str, Any], space: dict[str, ParamSpec], same: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The dimensions of ``corner`` that matter to a failure: those where another of their corner
    values (the rest of the corner kept) makes ``same`` false, i.e. fails otherwise or not at all."""
    return {
        name: value
        for name, value in corner.items()
        if any(not same({**corner, name: other}) for other in space[name].ends() if other != value)
    }


def _check_corners(spec: SweepSpec, base: dict[str, Any], where: str = "") -> None:
    """Validate the config of every corner of the space (:func:`pinnlab.sweep.space.corners`) as
    ``pinnlab run`` would, and check that each of them produces ``objective.metric``, and some of
    them ``pruner.metric`` (a trial without it is never pruned by it, but one without an objective
    value is PRUNED).  The first failure is one line naming the dimensions and values that matter.
    ``where`` names what was added to the base (the smoke overrides)."""
    from pinnlab.sweep.space import corners

    def config(corner: dict[str, Any]) -> RunConfig | str:
        """The validated config of ``corner``, or the one-line error that rejects it."""
        try:
            return validate_config(apply_overrides(base, list(corner.items())))
        except ConfigError as exc:
            return str(exc)

    def lacks(corner: dict[str, Any], metric: str, which) -> bool:
        cfg = config(corner)
        return not isinstance(cfg, str) and metric not in which(cfg)

    with_smoke = f" (with {where})" if where else ""
    objective, pruner = spec.objective.metric, spec.pruner.metric if spec.pruner.name != "none" else None
    found = pruner is None  # some trial reports the pruner's metric
    for corner in corners(spec.space):
        cfg = config(corner)
        if isinstance(cfg, str):
            corner = _minimal(corner, spec.space, lambda c: config(c) == cfg) or corner
            raise ConfigError("space", f"trials with {_show(corner)}{with_smoke} are invalid: {cfg}")
        if objective not in objective_metrics(cfg):
            corner = _minimal(corner, spec.space, lambda c: lacks(c, objective, objective_metrics))
            _metric_error(
                "objective.metric",
                objective,
                cfg,
                corner,
                objective_metrics,
                "those trials would be PRUNED without a value"
                if corner
                else "every trial would be PRUNED without a value",
            )
        found = found or pruner in pruner_metrics(cfg)
    if not found:
        _metric_error("pruner.metric", pruner, config({}), {}, pruner_metrics, "the pruner would never see it")


def _metric_error(field: str, metric: str, cfg: RunConfig, corner: dict[str, Any], which, consequence: str) -> None:
    """Raise the one line for a metric ``cfg`` does not produce: who lacks it, why if a flag or the
    problem explains it, and what is produced instead."""
    who = f"trials with {_show(corner)} produce" if corner else "a trial of this sweep produces"
    allowed = which(cfg)
    close = [] if corner else difflib.get_close_matches(metric, allowed.names, n=1)
    why = f" (did you mean {close[0]!r}?)" if close else ""
    for flag, on in cfg.diagnostics:
        if on is False:
            turned = cfg.model_copy(update={"diagnostics": cfg.diagnostics.model_copy(update={flag: True})})
            if metric in which(turned):
                why = f" (it is logged only with diagnostics.{flag}: true)"
                break

    if metric in ("rel_l2_error", "error/rel_l2") and "rel_l2_error" not in objective_metrics(cfg):
        why = f" (problem {cfg.problem.name} has no exact solution with these params)"
    raise ConfigError(
        field, f"{metric!r} is not one of the metrics {who}{why}, so {consequence}; allowed: {allowed.describe()}"
    )
