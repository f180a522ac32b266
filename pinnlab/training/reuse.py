"""Built trainers kept across the trials of one worker process, so a trial does not trace again.

Why: a sweep trial of 50 steps spends about as long building the model and tracing the compiled
step (~0.6 s, ~1.8 s with XLA) as training.  Trials whose configs differ only in what the graph reads
from variables, or what the host loop reads, can share one built :class:`Trainer`:

* **graph-free fields** (:data:`FREE`): ``training.seed`` (new initial weights, assigned; new points,
  which keep their shapes), ``training.steps`` / ``epochs`` (the host loop's budget),
  ``optimizer.learning_rate`` with a constant schedule (a Keras optimizer keeps it in a variable),
  ``loss.weights`` (the λ variables), ``divergence.*`` and ``name``;
* everything else (problem and its params, model, formulations, optimizer name and its constants,
  regularization coefficients, batch size, diagnostics flags, jit) is the **key**: a different
  value builds a new trainer.

Taking the next config (:func:`reset`): assign the initial weights a fresh ``Trainer`` with that
seed would draw (:class:`~pinnlab.training.replicas.StackedMLP` with one seed, proved equal to
:func:`~pinnlab.numerics.models.build_mlp` in tests/training/test_replicas.py), zero the optimizer's slots and
iteration count, assign the learning rate and the λ, and redo the per-run state
(``Trainer._prepare_run``: points from the new seed, batching, budget).  tests/training/test_reuse.py checks
that a reused trainer's steps equal a fresh one's bit for bit (its diagnostics to float rounding: a
trainer evaluates its first ones eagerly over its life, :mod:`pinnlab.training.compiled`).

The cache is per process (each sweep worker is one) and small (:data:`MAX_TRAINERS`, least
recently used first out): a trainer holds a model, an optimizer and its traced graphs.  Only
single-replicate first-order trainers are cached; L-BFGS traces per run anyway and stacked
replicates already amortise their trace over k seeds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from pinnlab.config import dict_without
from pinnlab.core import names

__all__ = ["FREE", "MAX_TRAINERS", "TrainerCache", "reuse_key", "reset"]

FREE = ("name", "training.seed", "training.steps", "training.epochs", "loss.weights", "divergence")
MAX_TRAINERS = 4  # enough for a sweep that alternates a few shapes; each holds a model and graphs


def reuse_key(cfg) -> str | None:
    """The fields that change shapes or the graph, as a string; None when not reusable."""
    if cfg.training.replicates > 1 or names.OPTIMIZERS.get(cfg.optimizer.name).full_batch:
        return None

    d = dict_without(cfg, FREE)
    if cfg.optimizer.schedule.name == "constant":
        d["optimizer"].pop("learning_rate", None)
    return json.dumps(d, sort_keys=True, default=str)


def reset(trainer, cfg, callbacks: Sequence[Any] = ()) -> None:
    """Make a built ``trainer`` start the run of ``cfg`` (same :func:`reuse_key`) from scratch."""
    import tensorflow as tf

    from pinnlab.numerics.models import mlp_kwargs
    from pinnlab.training.replicas import StackedMLP

    trainer.cfg = cfg
    trainer.callbacks = list(callbacks)
    trainer.replica_callbacks = []
    fresh = StackedMLP(seeds=[cfg.training.seed], **mlp_kwargs(cfg.model, trainer.problem))
    trainer.set_weights([v.numpy()[0] for v in fresh.variables])
    for v in trainer.optimizer.variables:
        if v.name != "learning_rate":
            v.assign(np.zeros(v.shape, v.dtype))
    if cfg.optimizer.schedule.name == "constant":  # a schedule's rate is in the key (not settable)
        trainer.optimizer.learning_rate = cfg.optimizer.learning_rate
    for term, lam in trainer.lambdas.items():
        lam.assign(tf.cast(float(cfg.loss.weights.get(term, 1.0)), lam.dtype))
    trainer._prepare_run()  # also restarts the diagnostics (a cold sharpness check)


class TrainerCache:
    """Up to ``size`` built trainers of one process, by :func:`reuse_key`."""

    def __init__(self, size: int = MAX_TRAINERS):
        self.size = size
        self.trainers: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, cfg, callbacks: Sequence[Any], build) -> Any:
        """A trainer for ``cfg``: a cached one reset to it, or ``build(cfg, callbacks)``."""
        key = reuse_key(cfg)
        if key is None:
            return build(cfg, callbacks)
        trainer = self.trainers.pop(key, None)
        if trainer is None:
            self.misses += 1
            trainer = build(cfg, callbacks)
        else:
            self.hits += 1
            reset(trainer, cfg, callbacks)
        self.trainers[key] = trainer
        while len(self.trainers) > self.size:
            self.trainers.popitem(last=False)
        return trainer
