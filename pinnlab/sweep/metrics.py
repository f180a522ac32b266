"""The metrics a trial of a config can produce, derived from the config without TensorFlow.

A sweep file naming one that no trial has (a typo, a metric of a diagnostic that is off, an error
against an exact solution the problem lacks) fails when it is loaded (:mod:`pinnlab.sweep.spec`)
instead of PRUNING every trial.  They follow where the values come from:
:func:`pinnlab.sweep.objective.objective_value` reads the run's summary, then its ``final_metrics``
(the last finite value of every history column, and ``error/rel_l2``); the pruner reads the history
row of a diagnostics step (the step's metrics and the diagnostics').  The names follow the trainer
(``Trainer.step_names``), its diagnostics (``pinnlab.training.diagnostics``, ``.sharpness``,
``.ntk_weighting``, ``.forecast``), the same for every replicate (``pinnlab.training.replicas``);
tests/sweep/test_sweep_space_input.py trains small configs and checks that every column they log is in
these sets.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

from pinnlab.core.summary import OBJECTIVE_METRICS
from pinnlab.problems import Problem, resolve_problem

__all__ = ["Metrics", "objective_metrics", "pruner_metrics"]


class Metrics:
    """Metric names a run can produce: ``names``, plus any name under a prefix of ``families``
    (those whose members only the traced network knows, e.g. a problem's own derivatives)."""

    def __init__(self, names: Sequence[str], families: Sequence[str] = ()):
        self.names = tuple(dict.fromkeys(names))
        self.families = tuple(families)

    def __contains__(self, metric: str) -> bool:
        return metric in self.names or any(metric.startswith(f) for f in self.families)

    def describe(self) -> str:
        return ", ".join(self.names + tuple(f"{f}<any>" for f in self.families))


class _Touched(Exception):
    pass


class _Probe:
    """Stands for both the input points and ``tf`` in :func:`_has_exact`: any use of it raises."""

    def _touch(self, *args, **kwargs):
        raise _Touched

    __getattr__ = __getitem__ = __call__ = __array__ = _touch
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _touch
    __pow__ = __neg__ = __len__ = __iter__ = __float__ = _touch


def _has_exact(problem) -> bool:
    """Whether ``problem.exact`` gives a solution, without TensorFlow: it is called with a probe as the
    points and as its module's ``tf``; returning None without using either means no exact solution
    (e.g. the seed problem without Dirichlet data); using them, or anything unforeseen, counts as one."""

    fn = type(problem).exact
    if fn is Problem.exact:
        return False
    try:
        probe = _Probe()
        call = types.FunctionType(
            fn.__code__, {**fn.__globals__, "tf": probe}, fn.__name__, fn.__defaults__, fn.__closure__
        )
        return call(problem, probe) is not None
    except Exception:
        return True


def _history(cfg) -> tuple[list[str], list[str], list[str], bool]:
    """(columns of every step, columns of diagnostics steps, families, exact solution known) of a run of ``cfg``."""

    problem = resolve_problem(cfg.problem.name, cfg.problem.params)
    terms = list(problem.term_names())
    reg, lc, d = cfg.regularization, cfg.loss, cfg.diagnostics
    loss_terms = terms + [t for t, c in (("l2", reg.l2), ("l1", reg.l1)) if c > 0]
    adaptive = {
        "fixed": [],
        "causal": [],
        "ntk": terms,
        "grad_norm": [t for t in terms if t not in problem.residual_terms],
    }
    encoders = ["encoder_1", "encoder_2"] if cfg.model.architecture == "modified_mlp" else []
    layers = [
        f"{n}/{v}"
        for n in [*(f"dense_{i + 1}" for i in range(cfg.model.depth + 1)), *encoders]
        for v in ("kernel", "bias")
    ]
    step = [
        "loss/total",
        *(f"loss/{t}" for t in loss_terms),
        "grad_norm/total",
        "weight_norm/total",
        *(f"lambda/{t}" for t in adaptive[lc.weighting.scheme]),
        *(["causal/w_min"] if lc.weighting.scheme == "causal" else []),
        *(["optimizer/phase"] if cfg.optimizer.then else []),
    ]
    diag = ["trend/ln_weight_norm"]
    if "newton_cg" in (name for name, _ in cfg.optimizer.phases()):  # pinnlab.training.loops.NewtonCGLoop
        diag += ["newton/step_size", "newton/cg_iters", "newton/cg_residual"]
    if lc.unbounded_terms(terms):
        diag.append("trend/loss")
    families = []
    if d.per_term_grads:
        diag += [f"grad_norm/{t}" for t in loss_terms]
    if d.per_layer:
        diag += [f"{k}/{n}" for n in layers for k in ("weight_norm", "grad_norm")]
    if d.derivatives:
        own = (
            type(problem).pde_residuals is not Problem.pde_residuals or type(problem).residuals is not Problem.residuals
        )
        if own:  # a problem that computes its own derivatives names them itself
            families.append("deriv/")
        else:
            diag += [f"deriv/{n}" for n in problem.derivatives]
    if d.update_ratio:
        diag += [f"update_ratio/{n}" for n in layers]
    exact = _has_exact(problem)
    if d.error and exact:
        diag.append("error/rel_l2")
    if d.sharpness:  # per replicate too (pinnlab.training.sharpness)
        diag.append("sharpness/top")
        adam_like = cfg.optimizer.name in ("adam", "adamw", "rmsprop")  # a preconditioner (.sharpness)
        if adam_like or cfg.optimizer.name == "sgd":
            diag.append("sharpness/ratio")
        if adam_like:
            diag.append("adam/g2_over_v")
    if d.ntk_trace or cfg.loss.weighting.scheme == "ntk":  # the ntk scheme logs the traces it computes
        diag += [f"ntk_trace/{t}" for t in terms]
    return step, diag, families, exact


def objective_metrics(cfg) -> Metrics:
    """What ``objective.metric`` may be for trials of ``cfg``: the summary's objective fields that it
    fills, and every history metric (its last finite value)."""
    step, diag, families, exact = _history(cfg)
    summary = [m for m in OBJECTIVE_METRICS if m != "rel_l2_error" or exact]
    return Metrics(summary + step + diag + (["error/rel_l2"] if exact else []), families)


def pruner_metrics(cfg) -> Metrics:
    """What ``pruner.metric`` may be for trials of ``cfg``: a column of a diagnostics step's history row."""
    step, diag, families, _ = _history(cfg)
    return Metrics(step + diag, families)
