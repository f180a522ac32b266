"""Optimizers and learning-rate schedules by YAML name.

``OPTIMIZERS`` maps a name to a builder ``(OptimizerConfig) -> keras.optimizers.Optimizer``.
``lbfgs`` is different in kind (a full-batch quasi-Newton method driven by SciPy's L-BFGS-B over the
flattened weights); it is registered with builder ``None`` and the trainer runs it itself.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from pinnlab.registry import Registry

__all__ = ["OPTIMIZERS", "build_optimizer", "learning_rate"]

OPTIMIZERS: Registry[Callable | None] = Registry("optimizer")


def learning_rate(cfg):
    """A float, or a Keras schedule for ``schedule.name: exponential``."""
    sch = cfg.schedule
    if sch.name == "constant":
        return cfg.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=sch.decay_steps, decay_rate=sch.decay_rate, staircase=sch.staircase
    )


OPTIMIZERS.register("sgd", lambda cfg: keras.optimizers.SGD(learning_rate(cfg), momentum=cfg.momentum))
OPTIMIZERS.register("adam", lambda cfg: keras.optimizers.Adam(learning_rate(cfg)))
OPTIMIZERS.register(
    "adamw", lambda cfg: keras.optimizers.AdamW(learning_rate(cfg), weight_decay=cfg.weight_decay)
)
OPTIMIZERS.register("rmsprop", lambda cfg: keras.optimizers.RMSprop(learning_rate(cfg)))
OPTIMIZERS.register("lbfgs", None)


def build_optimizer(cfg) -> keras.optimizers.Optimizer | None:
    builder = OPTIMIZERS.get(cfg.name, "optimizer.name")
    return None if builder is None else builder(cfg)
