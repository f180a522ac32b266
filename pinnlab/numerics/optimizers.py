"""Optimizers and learning-rate schedules, attached to the names of :mod:`pinnlab.core.names`.

``OPTIMIZERS`` maps a name to a builder ``(OptimizerConfig) -> keras.optimizers.Optimizer``.
``lbfgs`` and ``newton_cg`` are different in kind (``full_batch`` in :data:`pinnlab.core.names.OPTIMIZERS`:
second-order methods over the flattened weights); they are registered with builder ``None`` and the
trainer runs them itself (:mod:`pinnlab.training.loops`).
``SCHEDULES`` maps ``optimizer.schedule.name`` to ``(OptimizerConfig) -> learning rate``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from pinnlab.core import names
from pinnlab.core.registry import Registry

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "learning_rate"]

OPTIMIZERS: Registry[Callable | None] = Registry(names.OPTIMIZERS.kind)
SCHEDULES: Registry[Callable] = Registry(names.SCHEDULES.kind)

SCHEDULES.register("constant", lambda cfg: cfg.learning_rate)
SCHEDULES.register(
    "exponential",
    lambda cfg: keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate,
        decay_steps=cfg.schedule.decay_steps,
        decay_rate=cfg.schedule.decay_rate,
        staircase=cfg.schedule.staircase,
    ),
)


def learning_rate(cfg):
    """A float, or a Keras schedule for ``schedule.name: exponential``."""
    return SCHEDULES.get(cfg.schedule.name, "optimizer.schedule.name")(cfg)


OPTIMIZERS.register("sgd", lambda cfg: keras.optimizers.SGD(learning_rate(cfg), momentum=cfg.momentum))
OPTIMIZERS.register("adam", lambda cfg: keras.optimizers.Adam(learning_rate(cfg)))
OPTIMIZERS.register("adamw", lambda cfg: keras.optimizers.AdamW(learning_rate(cfg), weight_decay=cfg.weight_decay))
OPTIMIZERS.register("rmsprop", lambda cfg: keras.optimizers.RMSprop(learning_rate(cfg)))
OPTIMIZERS.register("lbfgs", None)
OPTIMIZERS.register("newton_cg", None)


def build_optimizer(cfg) -> keras.optimizers.Optimizer | None:
    builder = OPTIMIZERS.get(cfg.name, "optimizer.name")
    return None if builder is None else builder(cfg)
