"""Run configuration: YAML -> validated, frozen objects.

A config is a YAML mapping.  It may name a ``base`` (a preset name or another YAML file, relative
to the file) and then contain only overrides of it; ``--set dotted.key=value`` overrides apply last.
Validation happens once, here, at the edge: unknown keys, wrong types, impossible values and names
missing from a registry fail with a one-line :class:`~pinnlab.core.errors.ConfigError` naming the dotted
path, the value and what is allowed.  Names are checked against the TensorFlow-free catalogue
(:mod:`pinnlab.core.names`, and the problems' class-level metadata in :mod:`pinnlab.problems`), so a bad
value is reported in well under a second.  Everything downstream receives a frozen :class:`RunConfig`
whose ``problem.params`` are resolved (defaults filled in), so the logged config is the whole truth.

Every default below carries its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from pinnlab.config.replicates import check_replicates
from pinnlab.config.resources import (
    budget,  # re-exported: the run's steps from its config
    check_resources,
    declared_counts,
    sampled_counts,
)
from pinnlab.config.sources import (  # re-exported: pinnlab.config is the public entry
    apply_overrides,
    deep_merge,
    dict_without,
    flatten,
    load_yaml,
    parse_override,
    preset_names,
    read_yaml_file,
    resolve_bases,
)
from pinnlab.core import names
from pinnlab.core.errors import ConfigError
from pinnlab.core.registry import Registry
from pinnlab.core.validation import BOUND_REASONS, INT64_MAX, SCALE_MAX, config_error_from_validation
from pinnlab.problems import resolve_problem

__all__ = [
    "budget",
    "dict_without",
    "StrictModel",
    "Int",
    "Bool",
    "Float",
    "RunConfig",
    "load_config",
    "load_yaml",
    "read_yaml_file",
    "apply_overrides",
    "parse_override",
    "flatten",
    "preset_names",
    "validate_config",
    "config_error_from_validation",
    "MAX_SEED",
    "SCALE_MAX",
    "INT64_MAX",
    "MAX_NTK_PROBES",
]


class StrictModel(BaseModel):
    """Base of every config and sweep-file model.

    ``extra="forbid"``: an unknown key is a typo, reported with its dotted path and the allowed keys,
    never silently ignored.  ``frozen=True``: a validated config is a value that is logged once and
    handed to every part of a run, so nothing downstream may change it.  ``validate_default=True``:
    defaults pass the same constraints as a user's value, so a bad default fails at load time.
    ``allow_inf_nan=False``: every float of a config is a finite number (a rate, a threshold, a
    bound); ``.inf`` or ``.nan`` would pass ``gt=0`` checks (NaN compares false to everything) and
    make a run meaningless, so they fail as "input should be a finite number".
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


# Integers and booleans are strict: YAML's `true` is not a width, and 3.5 is not a step count.
# Every integer of a config is at most INT64_MAX (see pinnlab.problems.base): 1e23 as an int
# passed validation and failed inside TensorFlow after the run had started.  A validator rather
# than a constraint: a field's own tighter `le` would otherwise be replaced by this one.


def _int32_error(value: int) -> ValueError:
    return ValueError(f"{value!r} is not allowed: at most {INT64_MAX} ({BOUND_REASONS[INT64_MAX]})")


def _int32(value: int) -> int:
    if value > INT64_MAX:
        raise _int32_error(value)
    return value


Int = Annotated[int, Strict(), AfterValidator(_int32)]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, Strict()]  # takes ints (1 is 1.0) but not bools: `true` is not a learning rate
# Seeds go to NumPy, TensorFlow and Keras generators, some of which hold them in 32 bits: a larger
# seed overflowed inside TensorFlow after the run had started.
MAX_SEED = 2**31 - 1
# Hutchinson probes are traced one backward pass each into the step, so time and graph size grow
# with them; the estimate's error falls as 1/sqrt(probes): 1024 probes are 11x more accurate than
# the default 8 at 128x its cost, and past that the exact estimator is the better tool.
MAX_NTK_PROBES = 1024
# Learning-rate schedule names as a Literal, so a bad one reads "input should be 'constant' or ...".
ScheduleName = Literal[tuple(names.SCHEDULES.names())]  # type: ignore[valid-type]


def _known(catalogue: Registry, field: str):
    """A field validator: the value must be a name in ``catalogue`` (its error lists the names)."""

    def check(cls, value):
        catalogue.get(value, field)
        return value

    return field_validator(field.rpartition(".")[2])(classmethod(check))


class ProblemConfig(StrictModel):
    name: str = "poisson2d"
    # Problem-specific parameters; validated by the problem's own ``Params`` model (see problems/).
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(StrictModel):
    width: Int = Field(50, gt=0)  # 50 units: the usual PINN width (Raissi et al.; Wang et al.)
    depth: Int = Field(3, gt=0)  # hidden layers
    activation: str = "tanh"  # smooth, so every input derivative is informative
    output_activation: str = "linear"  # an unbounded output; softplus is what the seed question used
    initializer: str = "glorot_normal"  # Xavier normal, the PINN literature's default
    dtype: Literal["float32", "float64"] = "float32"  # float64 for derivative checks, 2-3x slower
    standardize: Bool = False  # map the problem's domain to zero mean / unit variance first
    # mlp: depth Dense layers; modified_mlp: two input encoders U, V gate every hidden layer,
    # h <- z*U + (1-z)*V (Wang, Teng & Perdikaris 2021's improved architecture; pinnlab.numerics.models)
    architecture: Literal["mlp", "modified_mlp"] = "mlp"

    _act = _known(names.ACTIVATIONS, "model.activation")
    _out = _known(names.ACTIVATIONS, "model.output_activation")
    _init = _known(names.INITIALIZERS, "model.initializer")


class WeightingConfig(StrictModel):
    scheme: Literal["fixed", "grad_norm", "ntk", "causal"] = "fixed"
    # every / alpha default per scheme (filled in below, so the logged config shows the value used):
    # grad_norm every 10 steps, alpha 0.9, as its reference code; ntk every 100 steps, alpha 0
    # (Wang, Yu & Perdikaris 2022 recompute the NTK every 100 steps and set lambda outright)
    every: Int = Field(gt=0)
    alpha: Float = Field(ge=0, lt=1)  # lambda <- alpha*lambda + (1-alpha)*lambda_hat
    # ntk: exact per-point traces, or a Hutchinson estimate (for terms too big or not row-separable)
    ntk_estimator: Literal["exact", "hutchinson"] = "exact"
    ntk_probes: Int = Field(
        8, gt=0, le=MAX_NTK_PROBES
    )  # Hutchinson probes: 8 were 11-45 % off (docs/benchmarks.md); error ~ 1/sqrt
    # causal (pinnlab.training.causal): the time interval in this many chunks, weights exp(-epsilon * earlier losses);
    # the authors' jaxpi configs use 32 chunks and epsilon 1
    causal_chunks: Int = Field(32, ge=2, le=1024)
    causal_epsilon: Float = Field(1.0, gt=0, le=SCALE_MAX)

    @model_validator(mode="before")
    @classmethod
    def _scheme_defaults(cls, data):
        if isinstance(data, dict):
            ntk = data.get("scheme") == "ntk"
            data = {"every": 100 if ntk else 10, "alpha": 0.0 if ntk else 0.9, **data}
        return data


class LossConfig(StrictModel):
    formulation: str = "squared"  # bounded below; `raw` is the seed question's unbounded mean(r)
    formulations: dict[str, str] = Field(default_factory=dict)  # per-term overrides
    # per-term fixed weights, default 1; every factor of the loss and the step is at most SCALE_MAX
    # (pinnlab.problems.base: any two of them multiply to a finite float32)
    weights: dict[str, Annotated[Float, Field(ge=0, le=SCALE_MAX, allow_inf_nan=False)]] = Field(default_factory=dict)
    huber_delta: Float = Field(1.0, gt=0, le=SCALE_MAX)
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)

    _form = _known(names.FORMULATIONS, "loss.formulation")

    @field_validator("formulations")
    @classmethod
    def _forms(cls, value):
        for term, name in value.items():
            names.FORMULATIONS.get(name, f"loss.formulations.{term}")
        return value

    def formulation_of(self, term: str) -> str:
        """The formulation of loss term ``term``: its own (``formulations``) or the default."""
        return self.formulations.get(term, self.formulation)

    def unbounded_terms(self, terms) -> list[str]:
        """The terms of ``terms`` whose formulation is unbounded below (``names.FORMULATIONS``)."""
        return [t for t in terms if not names.FORMULATIONS.get(self.formulation_of(t)).bounded_below]


class RegularizationConfig(StrictModel):
    l2: Float = Field(0.0, ge=0, le=SCALE_MAX)  # coefficient of sum ||W||^2 over kernels, added as loss term `l2`
    l1: Float = Field(0.0, ge=0, le=SCALE_MAX)  # coefficient of sum |W| over kernels, loss term `l1`
    include_biases: Bool = False  # penalise biases too (Keras' kernel_regularizer does not)
    clip_norm: Float | None = Field(None, gt=0, le=SCALE_MAX)  # clip gradients by global norm
    max_norm: Float | None = Field(None, gt=0, le=SCALE_MAX)  # max-norm constraint on each unit's incoming weights


class ScheduleConfig(StrictModel):
    name: ScheduleName = "constant"
    decay_steps: Int = Field(1000, gt=0)  # Wang et al.: x0.9 every 1000 steps
    decay_rate: Float = Field(0.9, gt=0, le=1)
    staircase: Bool = True


class OptimizerConfig(StrictModel):
    name: str = "adam"
    learning_rate: Float = Field(1e-3, gt=0, le=SCALE_MAX)  # Adam's customary step
    momentum: Float = Field(0.0, ge=0, lt=1)  # sgd only
    weight_decay: Float = Field(0.0, ge=0, le=SCALE_MAX)  # adamw only (decoupled)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    # lbfgs only: SciPy L-BFGS-B stopping rules (its own defaults scaled for PINN losses)
    lbfgs_max_iter: Int = Field(15000, gt=0)
    lbfgs_ftol: Float = Field(1e-12, gt=0)
    # newton_cg only: Nyström-preconditioned Newton-CG (pinnlab.training.newton_cg; Rathore et al. 2024)
    newton_rank: Int = Field(60, gt=0)  # the paper's Nyström rank
    newton_mu: Float = Field(1e-2, gt=0, le=SCALE_MAX)  # damping H + mu*I; the paper's grid is 1e-5 ... 1e-1
    newton_cg_iters: Int = Field(100, gt=0)  # CG iterations per step (the paper: up to 1000)
    newton_cg_tol: Float = Field(1e-10, gt=0, lt=1)  # CG stops at |residual| <= tol * |gradient|
    newton_precond_every: Int = Field(20, gt=0)  # the paper's preconditioner refresh
    # later phases (pinnlab.training.loops, "chains"): from step switch_step on, `then` (lbfgs or newton_cg)
    # trains the same weights, full batch: Adam then L-BFGS then Newton-CG (Rathore et al. 2024).
    # One name and one step, or lists of equal length with increasing steps.
    then: str | list[str] | None = None
    switch_step: Int | list[Int] | None = None

    _name = _known(names.OPTIMIZERS, "optimizer.name")

    @field_validator("then", "switch_step", mode="before")
    @classmethod
    def _one_or_a_list(cls, value, info):
        """A value or a list of values of the field's kind, said in one line (not per union member)."""
        kind, ok = {
            "then": ("an optimizer name", lambda v: isinstance(v, str)),
            "switch_step": ("an integer step", lambda v: isinstance(v, int) and not isinstance(v, bool)),
        }[info.field_name]
        if value is None or ok(value) or (isinstance(value, list) and all(ok(v) for v in value)):
            for v in _listed(value) or []:
                if isinstance(v, int) and v > INT64_MAX:
                    raise ConfigError(f"optimizer.{info.field_name}", str(_int32_error(v)))
            return value
        raise ConfigError(f"optimizer.{info.field_name}", f"{value!r} is not allowed: {kind} or a list of them")

    def phases(self) -> list[tuple[str, int]]:
        """``[(optimizer, first step), ...]``: ``name`` from step 0, then each of ``then`` from its switch step."""
        return [(self.name, 0), *zip(_listed(self.then) or [], _listed(self.switch_step) or [])]


def _listed(value) -> list | None:
    """A value-or-list field (``optimizer.then``, ``optimizer.switch_step``) as a list; None stays None."""
    return None if value is None else list(value) if isinstance(value, list) else [value]


class TrainingConfig(StrictModel):
    steps: Int | None = Field(None, gt=0)  # exactly one of steps / epochs; neither -> default_steps
    # the budget when neither steps nor epochs is set (L-BFGS: optimizer.lbfgs_max_iter): long enough
    # for the verdict rules' trend window (divergence.trend_window) to fit, short enough for a first look
    default_steps: Int = Field(1000, gt=0)
    epochs: Int | None = Field(None, gt=0)
    batch_size: Int | None = Field(None, gt=0)  # of the residual points; None = full batch
    resample: Bool = False  # draw fresh points every step (Wang et al.) instead of a fixed set
    seed: Int = Field(0, ge=0, le=MAX_SEED)  # see MAX_SEED
    jit_compile: Bool = False  # XLA: ~1.5x faster steps on poisson2d, 1-3 s more to compile
    deterministic: Bool = True  # enable TF op determinism: identical histories for identical seeds
    # Seeds seed, seed+1, ..., seed+replicates-1 of this config trained together in one compiled
    # step (pinnlab.training.replicas): a divergence rate needs several seeds, and these networks are
    # too small to keep two cores busy, so k stacked replicates cost far less than k runs.  1: one run.
    replicates: Int = Field(1, ge=1, le=256)

    @model_validator(mode="after")
    def _budget(self):
        if self.steps is not None and self.epochs is not None:
            raise ValueError(
                f"set one of training.steps and training.epochs, not both "
                f"(got steps={self.steps}, epochs={self.epochs})"
            )
        if self.seed + self.replicates - 1 > MAX_SEED:  # replicate r runs with seed + r
            raise ConfigError(
                "training.seed",
                f"{self.seed} with training.replicates {self.replicates} uses seeds up to "
                f"{self.seed + self.replicates - 1}, past {MAX_SEED}; lower it",
            )
        return self


class DiagnosticsConfig(StrictModel):
    every: Int = Field(100, gt=0)  # expensive diagnostics every 100 steps: <10% of a run's time
    per_layer: Bool = True  # per-layer weight and gradient norms, kernels and biases apart
    per_term_grads: Bool = True  # gradient norm of every loss term (one backward pass each)
    derivatives: Bool = True  # mean |.| of each derivative the residual uses
    update_ratio: Bool = True  # ||ΔW|| / ||W|| per layer
    error: Bool = True  # relative L2 error on the evaluation grid (if the exact solution is known)
    ntk_trace: Bool = False  # ntk_trace/<term> = tr(K_ii); off: 1.4-10 steps per call, 13-56 s first compile
    # top Hessian eigenvalue by warm-started Lanczos on Hessian-vector products, and its
    # ratio to the optimizer's stability threshold (pinnlab.training.sharpness); on because it costs
    # under 10% of a run at every=100 (docs/benchmarks.md, benchmarks/speed/sharpness_overhead.py)
    sharpness: Bool = True
    sharpness_iters: Int = Field(3, gt=0)  # HVPs per check, warm-started from the last eigenvector
    sharpness_cold_iters: Int = Field(12, gt=0)  # at most this many HVPs at the first check (random start)
    # the first check stops (after sharpness_iters HVPs or more) once its residual bound puts an
    # eigenvalue within this fraction of the estimate; 0: always sharpness_cold_iters HVPs
    sharpness_tol: Float = Field(0.05, ge=0)
    # HVPs on at most 512 points per set (a fixed random subset): the Hessian of a mean over a random
    # subset estimates the full one, and poisson2d's 2400 points made sharpness cost 16% of a run
    sharpness_points: Int = Field(512, gt=0)
    # a diagnostic function runs eagerly for its first eager_calls calls over a trainer's life, then
    # traced: a trace costs 12-25 eager diagnostics calls, 34-60 update ratios, 4-73 predictions
    # (benchmarks/speed/eager_costs.py; pinnlab.training.compiled)
    eager_calls: Int = Field(16, ge=0)
    # sharpness checks run eagerly before the HVP is traced (one check is several HVPs)
    eager_checks: Int = Field(4, ge=0)


class CausesConfig(StrictModel):
    """Thresholds of the cause rules (pinnlab.training.causes): evidence a cause must show."""

    # sharpness/ratio above it at some check: past the stability threshold; at the edge of stability
    # gradient descent hovers at exactly 1 (Cohen et al. 2021), hence a 10% margin
    step_ratio: Float = Field(1.1, gt=0)
    # a measured deriv/<name> at most this fraction of the largest one at every check is zero
    zero_derivative: Float = Field(1e-6, gt=0, lt=1)
    # per-term gradient norms further apart than this: the two orders of magnitude Wang et al. 2021
    # report between PINN terms
    imbalance: Float = Field(100.0, gt=1)
    # median ||grad biases|| / ||grad kernels|| below it: 0.04-0.12 on the seed question's Dense(100, relu)
    bias_ratio: Float = Field(0.1, gt=0)
    # held-out / training PDE residual above it (silent_failure uses divergence.max_heldout_ratio = 100)
    overfit_ratio: Float = Field(10.0, gt=1)
    # a NaN run whose last finite values came within this factor of float32's largest: an overflow
    overflow_margin: Float = Field(1e8, gt=1)


class DivergenceConfig(StrictModel):
    """Thresholds of the outcome classes; see pinnlab.training.divergence."""

    stop_early: Bool = True  # stop a divergent run instead of burning its budget
    max_weight_ratio: Float = Field(1e3, gt=1)  # blowup: ||W|| grew 1000x past its initial value
    max_weight_norm: Float = Field(1e8, gt=0)  # blowup: ||W|| past this, whatever it started at
    growth_window: Int = Field(1000, gt=1)  # steps over which exponential growth is fitted
    growth_rate: Float = Field(2e-3, gt=0)  # blowup: d ln||W|| / dstep above this (x7.4 / 1000)
    growth_min_ratio: Float = Field(10.0, gt=1)  # ... once ||W|| is at least 10x its initial value
    # unbounded: the loss fell below this.  Below 0: every formulation but `raw` is >= 0 (as are the
    # weights and penalties), so only an unbounded-below loss can cross a negative floor; a floor
    # at or above 0 would label a bounded loss that converges `unbounded`.
    loss_floor: Float = Field(-1e6, lt=0)
    # a set of replicates (a run's `training.replicates`, a sweep trial's `replicates`) is divergent when
    # at least this share of its seeds diverged: a configuration that fails one seed in two is not one to
    # call stable, and with two seeds one divergent seed already decides (pinnlab.config.replicates.verdict)
    replicate_rate: Float = Field(0.5, gt=0, le=1)
    max_rel_error: Float = Field(0.5, gt=0)  # silent_failure: error vs exact solution above this
    max_heldout_ratio: Float = Field(100.0, gt=1)  # silent_failure: held-out / training residual
    # silent_failure: a wrong answer with a training loss at most this x its initial value (the
    # label benchmark's tune half: convection beta 30-50 end wrong at 5e-3-5e-2 of their initial loss)
    low_loss_ratio: Float = Field(1e-2, gt=0)
    # stalled: a wrong answer with a loss bounded below still above this x its initial value (it has not
    # trained; under it a wrong run is still training: docs/verdicts.md, "Did it train")
    stalled_loss_ratio: Float = Field(0.3, gt=0, lt=1)
    heldout_points: Int = Field(4096, gt=0)
    # diverging: finite at the end but still running away (pinnlab.training.trends)
    # at most 1e6 budgets: the projection extends a fitted slope linearly, and horizon x budget
    # must stay a finite number of steps
    horizon: Float = Field(
        10.0, ge=1, le=1e6
    )  # a label must hold at 10x the budget (the label benchmark, docs/verdicts.md)
    trend_window: Int = Field(1000, gt=7)  # end-of-run trends fitted over the last 1000 steps (<= half the run)
    trend_steady: Float = Field(0.8, gt=0)  # "steady": the latest rate is >= 0.8x the window's earlier rate
    trend_min_rate: Float = Field(1e-5, gt=0)  # d ln||W||/dstep below this is flat, whatever the projection
    # forecast alarms (pinnlab.training.forecast); they never stop a run unless stop_on_alarm
    stop_on_alarm: Bool = False  # an alarm is a forecast, not a verdict: by default the run goes on
    # sharpness alarms (pinnlab.training.forecast): at the first check, before any update, a ratio past the
    # catapult range (Lewkowycz et al. 2020: 1-2x the threshold can still recover); later, a ratio this far
    # past the threshold at this many checks in a row (single spikes recovered in the benchmark corpus)
    alarm_sharpness_initial: Float = Field(2.0, gt=0)
    alarm_sharpness_ratio: Float = Field(3.0, gt=1)
    alarm_sharpness_persist: Int = Field(2, gt=0)
    alarm_min_weight_ratio: Float = Field(3.0, gt=1)  # weight-growth alarm only once ||W|| is 3x initial
    # trend alarms fit >= 100 steps (so from step 200): over shorter windows an early, decaying fall
    # of a loss looks as steady as a runaway one (exp(-t/30) over 25 steps falls at a near-constant rate)
    alarm_min_window: Int = Field(100, gt=7)


class RunConfig(StrictModel):
    name: str | None = None
    problem: ProblemConfig = Field(default_factory=ProblemConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    divergence: DivergenceConfig = Field(default_factory=DivergenceConfig)
    causes: CausesConfig = Field(default_factory=CausesConfig)

    @model_validator(mode="after")
    def _replicates(self):
        if self.training.replicates > 1:
            check_replicates(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def validate_config(data: Mapping) -> RunConfig:
    """Validate a merged mapping into a frozen RunConfig with resolved problem params."""
    if "base" in data:
        raise ConfigError("base", "is only allowed at the top of a config file, not as an override")
    try:
        cfg = RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error_from_validation(exc, RunConfig) from None
    problem = resolve_problem(cfg.problem.name, cfg.problem.params)
    terms = problem.term_names()
    for key in ("formulations", "weights"):
        for term in getattr(cfg.loss, key):
            if term not in terms:
                raise ConfigError(
                    f"loss.{key}.{term}",
                    f"unknown loss term; terms of {cfg.problem.name} are {', '.join(terms)}",
                )
    _check_chain(cfg.optimizer)
    if names.OPTIMIZERS.get(cfg.optimizer.name).full_batch and cfg.loss.weighting.scheme != "fixed":
        raise ConfigError(
            "loss.weighting.scheme",
            f"{cfg.loss.weighting.scheme!r} needs a first-order optimizer; "
            f"with optimizer.name {cfg.optimizer.name!r} use 'fixed'",
        )
    if cfg.optimizer.then is not None and cfg.loss.weighting.scheme != "fixed":
        raise ConfigError(
            "loss.weighting.scheme",
            f"{cfg.loss.weighting.scheme!r} needs a first-order optimizer "
            f"throughout; with optimizer.then {cfg.optimizer.then!r} use 'fixed'",
        )
    if cfg.loss.weighting.scheme == "causal":
        _check_causal(cfg, problem)

    check_resources(cfg, problem, declared_counts(problem))  # before sampling: n_residual=1e12
    counts = sampled_counts(problem)
    check_resources(cfg, problem, counts)
    n = counts.get("residual", 0)
    bs = cfg.training.batch_size
    if bs is not None and bs > n:
        raise ConfigError("training.batch_size", f"{bs} is larger than the {n} residual points of {cfg.problem.name}")
    s, steps = cfg.optimizer.phases()[-1][1], budget(cfg, n)[2]
    if s >= steps:
        raise ConfigError(
            "optimizer.switch_step",
            f"{s} is not before the end of the budget ({steps} steps): the last phase would never run",
        )
    # a user problem's pde reads only its derivatives (built-ins: tests/problems/test_problems.py)
    if ":" in cfg.problem.name:
        problem.check_pde_reads(cfg.problem.name)
    return cfg.model_copy(update={"problem": ProblemConfig(name=cfg.problem.name, params=problem.params_dict())})


def _check_chain(opt: OptimizerConfig) -> None:
    """Later optimizer phases: each of ``then`` a full-batch second-order optimizer (lbfgs, newton_cg)
    other than the one before; each switch step an integer above the one before; then both given,
    of equal length.  Each field's values are checked before the pairing, so an error names the
    field whose value is wrong."""
    allowed = [n for n, o in names.OPTIMIZERS.items() if o.full_batch]
    later, steps = _listed(opt.then), _listed(opt.switch_step)
    if later is not None:
        if not later:
            raise ConfigError("optimizer.then", f"[] is not allowed: one of {', '.join(allowed)}, or a list of them")
        previous = opt.name
        for name in later:
            if name not in allowed:
                raise ConfigError(
                    "optimizer.then", f"{name!r} is not allowed: a later phase is one of {', '.join(allowed)}"
                )
            if name == previous:
                raise ConfigError("optimizer.then", f"{name!r} follows itself: a later phase changes the optimizer")
            previous = name
    if steps is not None:
        if not steps:
            raise ConfigError("optimizer.switch_step", "[] is not allowed: a step, or a list of steps")
        prev_step = 0
        for step in steps:
            if step <= prev_step:
                raise ConfigError(
                    "optimizer.switch_step",
                    f"{step!r} is not allowed: switch steps are greater than 0 "
                    f"and increasing (the previous one is {prev_step})",
                )
            prev_step = step
    if (later is None) != (steps is None):
        missing = "optimizer.switch_step" if steps is None else "optimizer.then"
        raise ConfigError(
            missing,
            "is needed: optimizer.then (the later phases' optimizers) and optimizer.switch_step "
            "(the steps they start at) go together",
        )
    if later is not None and len(later) != len(steps):
        raise ConfigError(
            "optimizer.switch_step",
            f"{opt.switch_step!r} does not match optimizer.then {opt.then!r}: one switch step per later optimizer",
        )


def _check_causal(cfg: RunConfig, problem) -> None:
    """Causal weighting needs a time coordinate and a squared residual (the mean squares it weights)."""
    if "t" not in problem.coords:
        raise ConfigError(
            "loss.weighting.scheme",
            f"'causal' weights the residual by time, but {cfg.problem.name} has "
            f"no coordinate t (its coordinates: {', '.join(problem.coords)})",
        )
    for term in problem.residual_terms:
        form = cfg.loss.formulation_of(term)
        if form != "squared":
            raise ConfigError(
                f"loss.formulations.{term}" if term in cfg.loss.formulations else "loss.formulation",
                f"{form!r} with loss.weighting.scheme 'causal', which weights mean squares; use 'squared'",
            )


def load_config(source: str | Path | Mapping | RunConfig = "poisson2d", overrides: Iterable[str] = ()) -> RunConfig:
    """A preset name, YAML path or mapping, plus ``dotted.key=value`` overrides -> RunConfig."""
    if isinstance(source, RunConfig):
        data = source.to_dict()
    elif isinstance(source, Mapping):
        data = dict(source)
        base = data.pop("base", None)
        if base is not None:
            data = deep_merge(resolve_bases(base), data)
    else:
        data = resolve_bases(source)
    return validate_config(apply_overrides(data, overrides))
