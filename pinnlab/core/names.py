"""The catalogue: every pluggable part's YAML name and metadata, without TensorFlow.

Validating a config needs to know which names exist and a few facts about them (is this loss
bounded below? is this optimizer the full-batch L-BFGS?), never how they compute.  Keeping those
facts here, in a module that imports nothing heavier than the standard library, lets
``pinnlab.config``, ``pinnlab.sweep.spec`` and ``pinnlab.analysis`` answer a bad ``--set`` value in
well under a second instead of waiting 7–13 s for TensorFlow to load.  Optuna splits itself the same
way: ``optuna.distributions`` imports without any sampler backend.

The implementation modules attach their TensorFlow callables to these same names:
``pinnlab.numerics.models`` (activations, initializers), ``pinnlab.numerics.losses`` (formulations) and
``pinnlab.numerics.optimizers`` (optimizers, schedules).  ``tests/core/test_registry.py`` checks, entry by entry,
that both sides list the same names and that each formulation's ``bounded_below`` is true to its
values.  Problems carry their metadata as class attributes in ``pinnlab.problems``, which is itself
TensorFlow-free (see its docstring).

Every catalogue is a :class:`~pinnlab.core.registry.Registry`, so a miss raises
:class:`~pinnlab.core.errors.UnknownNameError` listing the valid names, and its ``kind`` (the word in
"unknown activation") is shared with the implementation registry of the same names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pinnlab.core.registry import Registry

__all__ = [
    "ActivationInfo",
    "FormulationInfo",
    "OptimizerInfo",
    "Info",
    "ACTIVATIONS",
    "FORMULATIONS",
    "OPTIMIZERS",
    "INITIALIZERS",
    "SCHEDULES",
]


def _catalogue(kind: str, entries: Iterable[Any]) -> Registry[Any]:
    """A registry of ``entries`` keyed by their ``name``."""
    registry: Registry[Any] = Registry(kind)
    for entry in entries:
        registry.register(entry.name, entry)
    return registry


@dataclass(frozen=True)
class Info:
    """A name and what a user should know about it (initializers, schedules)."""

    name: str
    note: str = ""


@dataclass(frozen=True)
class ActivationInfo:
    """An activation's smoothness: ``vanishes_from = k`` means its k-th derivative is zero almost
    everywhere (ReLU: k = 2, so u_yy of a ReLU network is zero a.e. and a residual with second
    derivatives cannot be fitted).  The trainer turns that into a warning on the run result."""

    name: str
    vanishes_from: int | None  # lowest derivative order that is zero almost everywhere; None: never
    note: str = ""

    def degenerate_for(self, order: int) -> bool:
        """True if a network with this activation has order-``order`` input derivatives ≡ 0 a.e."""
        return self.vanishes_from is not None and order >= self.vanishes_from


@dataclass(frozen=True)
class FormulationInfo:
    """How a loss formulation reduces one residual ``r`` to a scalar, and whether that scalar has a
    lower bound: only an unbounded-below loss can run off to −∞ (the ``unbounded`` outcome)."""

    name: str
    formula: str
    bounded_below: bool
    note: str = ""


@dataclass(frozen=True)
class OptimizerInfo:
    """``full_batch``: the optimizer (SciPy's L-BFGS-B, Newton-CG) works on the flattened weights, run
    by the trainer itself on the whole batch; it has no Keras optimizer, no learning-rate schedule and no
    step between which adaptive loss weights could be updated.

    ``bounded_step``: every weight moves by at most a few learning rates per step whatever the
    gradient (Adam: |Δw| ≤ η·(1 − β1)/√(1 − β2) ≈ 3.2η, Kingma & Ba 2015 §2.1; RMSprop: ≤ η/√(1 − ρ)),
    so the weight norm can grow at most linearly in the steps, never exponentially: the divergence
    trends project it linearly (:mod:`pinnlab.training.trends`)."""

    name: str
    full_batch: bool = False
    bounded_step: bool = False
    note: str = ""


ACTIVATIONS = _catalogue(
    "activation",
    [
        ActivationInfo("relu", 2, "piecewise linear: second derivative zero almost everywhere"),
        ActivationInfo("softplus", None),
        ActivationInfo("tanh", None),
        ActivationInfo("sin", None, "SIREN-style periodic activation"),
        ActivationInfo("sigmoid", None),
        ActivationInfo("silu", None),
        ActivationInfo("gelu", None),
        ActivationInfo("elu", None, "derivatives of order >= 2 vanish for x > 0 (half the line)"),
        ActivationInfo("linear", 2, "a linear network has no curvature at all"),
    ],
)

FORMULATIONS = _catalogue(
    "loss formulation",
    [
        FormulationInfo("raw", "mean(r)", False, "the seed question's loss: unbounded below, diverges"),
        FormulationInfo("abs", "mean(|r|)", True, "non-smooth at 0"),
        FormulationInfo("squared", "mean(r²)", True, "the PINN standard"),
        FormulationInfo("huber", "mean(huber_δ(r))", True, "quadratic within δ, linear outside"),
        FormulationInfo("log_cosh", "mean(log cosh r)", True, "smooth, ~r²/2 near 0 and ~|r| far out"),
    ],
)

OPTIMIZERS = _catalogue(
    "optimizer",
    [
        OptimizerInfo("sgd", note="with optional momentum"),
        OptimizerInfo("adam", bounded_step=True, note="the PINN literature's default"),
        OptimizerInfo("adamw", bounded_step=True, note="Adam with decoupled weight decay"),
        OptimizerInfo("rmsprop", bounded_step=True),
        OptimizerInfo("lbfgs", full_batch=True, note="SciPy L-BFGS-B, quasi-Newton"),
        OptimizerInfo("newton_cg", full_batch=True, note="Nyström-preconditioned Newton-CG, second order"),
    ],
)

INITIALIZERS = _catalogue(
    "initializer",
    [
        Info("glorot_normal", "Xavier normal, as in Wang et al. 2021"),
        Info("glorot_uniform", "Keras' default"),
        Info("he_normal"),
        Info("he_uniform"),
        Info("lecun_normal"),
        Info("lecun_uniform"),
    ],
)

SCHEDULES = _catalogue(
    "learning-rate schedule",
    [
        Info("constant", "the learning rate as given"),
        Info("exponential", "x decay_rate every decay_steps (staircase or smooth)"),
    ],
)
