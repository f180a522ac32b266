"""The replica axis: k ≥ 1 independent networks trained by one :class:`Trainer` in one compiled step.

A run with ``training.replicates: k`` is k runs, seeds ``training.seed + r``: replicate ``r`` has
its own initial weights, points (sampled, batched and resampled by its own
``np.random.default_rng(seed + r)`` exactly as a separate run's), optimizer state, loss weights,
clipping, max-norm, diagnostics, divergence monitor and outcome.  The trainer is written once
against an :class:`Axis`; the axis says how a per-point tensor, a weight and a norm look per
replicate:

* :class:`One` (k = 1): the Keras network of :func:`pinnlab.numerics.models.build_mlp` and the reductions of
  a single run (a scalar loss, ``tf.clip_by_global_norm``).  A plain run keeps it because it is
  measurably faster than a stack of one (``benchmarks/speed/replicates.py``: the stacked network's
  transposes and batched matmuls) and because its numbers are those every earlier run logged.
* :class:`Stacked` (k > 1): :class:`StackedMLP`, k networks on a leading axis evaluated in one
  batched matmul chain.  The networks pinnlab trains (2 -> 100 -> 1) are too small to keep two
  cores busy; a step is per-op overhead, so k networks in one op chain cost far less than k runs.

Stacked layout of points (*interleaved*): the k replicates' sets ``(n, d)`` are stacked as
``(n, k, d)`` and flattened to ``(n·k, d)``, so row ``i·k + r`` is point ``i`` of replicate ``r``.
The network reshapes to ``(k, n, d)`` inside and multiplies by kernels ``(k, fan_in, fan_out)``;
row ``i·k + r`` of its output depends only on that row and on replicate ``r``'s weights.  So a
problem's ``residuals(net, points)`` runs unchanged (input derivatives of the summed output are
exact per row: d(Σ_r u_r)/dx_r = du_r/dx_r), a problem that splits a set into equal contiguous
blocks of rows (helmholtz2d's edges) splits every replicate alike, and a term reduces per
replicate by reshaping ``(n·k, 1)`` to ``(n, k)`` and reducing axis 0.  The one loss the tape
differentiates is the sum of the replicates' totals, whose gradient is each replicate's own (the
networks share no weights); for the same reason its Hessian is block-diagonal, so one stacked
Hessian-vector product is every replicate's product (:mod:`.sharpness`).  Keras optimizers on
stacked variables are elementwise, hence per replicate; their iteration count is shared, as k
separate runs' counts are equal.  A replicate whose run would have ended is *frozen*: the step
keeps its pre-step weights (``w ← where(active, w_new, w_before)``) while the others go on.

Initial weights: replicate ``r`` with seed ``s`` gets exactly the draws a separate run with seed
``s`` gets from :func:`pinnlab.numerics.models.build_mlp` (the initializer class and seed ``s·1000 + i`` per
layer, called with the same shape); biases start at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pinnlab.numerics.losses import grad_norm_lambda_hat, penalties
from pinnlab.numerics.models import ACTIVATIONS, INITIALIZERS, build_mlp, variable_name
from pinnlab.training.diagnostics import global_norm

__all__ = [
    "Axis",
    "One",
    "Stacked",
    "axis_for",
    "ReplicaView",
    "StackedMLP",
    "per_replicate",
    "replicate_norm",
    "interleave",
]


class Axis:
    """How the trainer's per-replicate quantities look; ``k`` replicates.

    A *per-replicate value* is a scalar for :class:`One` and a ``(k,)`` vector for :class:`Stacked`;
    :meth:`values` turns one into k host floats either way.
    """

    k: int = 1

    def values(self, x) -> np.ndarray:
        """A per-replicate value (tensor or array) as a ``(k,)`` float array."""
        return np.reshape(np.asarray(x, np.float64), (self.k,))

    def rows(self, values: dict) -> list[dict[str, float]]:
        """``{key: per-replicate value}`` as one ``{key: float}`` dict per replicate."""
        arrays = {key: self.values(v) for key, v in values.items()}
        return [{key: float(a[r]) for key, a in arrays.items()} for r in range(self.k)]


class One(Axis):
    """A single run: the Keras network and a single run's reductions."""

    def model(self, seeds: Sequence[int], kwargs: dict):
        model = build_mlp(seed=seeds[0], **kwargs)
        vars_ = list(model.trainable_variables)
        return model, vars_, [variable_name(v) for v in vars_]

    def term(self, f, r, delta):
        return f(r, delta)

    def penalties(self, weights, l2: float, l1: float) -> dict:
        return penalties(weights, l2, l1)

    def norm(self, tensors) -> tf.Tensor:
        return global_norm(tensors)

    def sum_squares(self, tensors) -> tf.Tensor:
        return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])

    def total(self, x):
        return x

    def clip(self, grads, clip_norm: float, gnorm):
        return tf.clip_by_global_norm(grads, clip_norm, use_norm=gnorm)[0]

    def column_norms(self, w):
        return tf.sqrt(tf.reduce_sum(tf.square(w), axis=0, keepdims=True))

    def mean_abs(self, d):
        return tf.reduce_mean(tf.abs(d))

    def mean_square(self, r):
        return tf.reduce_mean(tf.square(r))

    def grad_norm_hat(self, g_res, g_term):
        return grad_norm_lambda_hat(g_res, g_term)

    def keep(self, vars_, backup, active) -> None:
        """Frozen replicates keep their pre-step weights (one run is never frozen mid-step)."""

    def replica(self, t, r: int):
        """Replicate ``r``'s part of a variable (or of a per-replicate value)."""
        return t

    def replica_shape(self, shape) -> tuple:
        """The shape of one replicate's part of a variable of ``shape``."""
        return tuple(shape)

    def column(self, t, r: int):
        """Replicate ``r``'s rows of a per-point tensor ``(n·k, …)``."""
        return t

    def interleave(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(sets[0])

    def stack(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """k replicate slices of a variable (host arrays) as the variable's value."""
        return np.asarray(parts[0])


class Stacked(Axis):
    """k > 1 replicates on a leading axis (:class:`StackedMLP`; the module doc's layout)."""

    def __init__(self, k: int):
        self.k = k

    def model(self, seeds: Sequence[int], kwargs: dict):
        model = StackedMLP(seeds=seeds, **kwargs)
        return model, list(model.variables), list(model.var_names)

    def _per(self, r):
        return per_replicate(r, self.k)

    def term(self, f, r, delta):
        return f(self._per(r), delta, axis=0)

    def penalties(self, weights, l2: float, l1: float) -> dict:
        out = {}
        dtype = weights[0].dtype
        if np.any(l2 > 0):
            out["l2"] = tf.constant(l2, dtype) * tf.add_n(
                [tf.reduce_sum(tf.square(w), axis=range(1, w.shape.rank)) for w in weights]
            )
        if np.any(l1 > 0):
            out["l1"] = tf.constant(l1, dtype) * tf.add_n(
                [tf.reduce_sum(tf.abs(w), axis=range(1, w.shape.rank)) for w in weights]
            )
        return out

    def norm(self, tensors) -> tf.Tensor:
        return replicate_norm(tensors)

    def sum_squares(self, tensors) -> tf.Tensor:
        return tf.square(replicate_norm(tensors))

    def total(self, x):
        return tf.reduce_sum(x)

    @staticmethod
    def bcast(x, like):
        return tf.reshape(x, [-1] + [1] * (like.shape.rank - 1))

    def clip(self, grads, clip_norm: float, gnorm):
        # tf.clip_by_global_norm's formula, one factor per replicate (clip_norm: one per replicate)
        c = tf.constant(clip_norm, gnorm.dtype)
        scale = c * tf.minimum(1.0 / gnorm, 1.0 / c) + (gnorm - gnorm)
        return [g * self.bcast(scale, g) for g in grads]

    def column_norms(self, w):
        return tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))

    def mean_abs(self, d):
        return tf.reduce_mean(tf.abs(self._per(d)), axis=0)

    def mean_square(self, r):
        return tf.reduce_mean(tf.square(self._per(r)), axis=0)

    def grad_norm_hat(self, g_res, g_term):
        def per(g, op):
            return op(tf.reshape(g, (self.k, -1)), axis=1)

        num = tf.reduce_max(tf.stack([per(tf.abs(g), tf.reduce_max) for g in g_res]), axis=0)
        den = tf.reduce_mean(tf.stack([per(tf.abs(g), tf.reduce_mean) for g in g_term]), axis=0)
        return num / tf.maximum(den, tf.constant(1e-30, den.dtype))

    def keep(self, vars_, backup, active) -> None:
        for v, b in zip(vars_, backup):
            v.assign(tf.where(self.bcast(active, v), v, b))

    def replica(self, t, r: int):
        return t[r]

    def replica_shape(self, shape) -> tuple:
        return tuple(shape)[1:]

    def column(self, t, r: int):
        return self._per(t)[:, r]

    def interleave(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        return interleave(sets)

    def stack(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(p) for p in parts])


def axis_for(k: int) -> Axis:
    """The axis of ``training.replicates: k``."""
    return One() if k == 1 else Stacked(k)


class ReplicaView:
    """Replicate ``r`` of a trainer as its :class:`~pinnlab.training.recorder.Recorder` sees a run:
    the config with that replicate's seed, its weights, its end-of-run evaluations and callbacks."""

    def __init__(self, trainer, r: int, callbacks: Sequence = ()):
        self.parent = trainer
        self.r = r
        self.cfg = trainer.replica_cfgs[r]
        self.callbacks = list(callbacks)
        self.step_names = trainer.step_names
        self.terms = trainer.terms
        self.warnings = trainer.warnings
        self.static_causes = trainer.static_causes
        self.steps_budget = trainer.steps_budget

    def __getattr__(self, name):  # anything else a callback reads of the run: the trainer's
        if name == "parent":
            raise AttributeError(name)
        return getattr(self.parent, name)

    @property
    def vars(self):
        return [self.parent.axis.replica(v, self.r) for v in self.parent.vars]

    def rel_l2_error(self):
        return self.parent.final_evaluations()["rel_l2"][self.r]

    def heldout_residual(self):
        return self.parent.final_evaluations()["heldout"][self.r]


def _activation(name: str, field: str):
    fn = ACTIVATIONS.get(name, field).fn
    return keras.activations.get(fn) if isinstance(fn, str) else fn


class StackedMLP:
    """``k`` copies of :func:`pinnlab.numerics.models.build_mlp`'s network, one per seed in ``seeds``.

    Calling it maps interleaved points ``x: (n·k, d)`` to ``u: (n·k, 1)``.  ``variables`` are
    ``dense_i/kernel: (k, fan_in, fan_out)`` and ``dense_i/bias: (k, fan_out)`` in the order of a
    Keras model's ``trainable_variables``; ``var_names`` name them as a single run does.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        width: int,
        depth: int,
        activation: str,
        output_activation: str = "linear",
        initializer: str = "glorot_uniform",
        dtype: str = "float32",
        seeds: Sequence[int] = (0,),
        standardize: tuple[np.ndarray, np.ndarray] | None = None,
        architecture: str = "mlp",
    ):
        if architecture != "mlp":  # pinnlab.config.replicates.check_replicates refuses it at config time
            raise ValueError(f"model.architecture: {architecture!r} has no stacked form (only 'mlp')")
        self.k = k = len(seeds)
        self.input_dim = input_dim
        self.dtype = tf.as_dtype(dtype)
        init_cls = INITIALIZERS.get(initializer, "model.initializer")
        self.acts = [_activation(activation, "model.activation")] * depth
        self.acts.append(_activation(output_activation, "model.output_activation"))
        self.standardize = None
        if standardize is not None:
            mean, std = standardize
            self.standardize = (
                tf.constant([float(m) for m in mean], self.dtype),
                tf.constant([float(s) for s in std], self.dtype),
            )
        dims = [input_dim] + [width] * depth + [1]
        self.variables: list[tf.Variable] = []
        self.var_names: list[str] = []
        for i in range(depth + 1):
            shape = (dims[i], dims[i + 1])
            kernel = np.stack([np.asarray(init_cls(seed=s * 1000 + i)(shape, dtype=dtype)) for s in seeds])
            name = f"dense_{i + 1}"
            self.variables.append(tf.Variable(kernel, name=f"{name}_kernel", dtype=self.dtype))
            self.variables.append(tf.Variable(np.zeros((k, dims[i + 1])), name=f"{name}_bias", dtype=self.dtype))
            self.var_names += [f"{name}/kernel", f"{name}/bias"]
        self.kernels = self.variables[0::2]
        self.trainable_variables = self.variables

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        k, d = self.k, self.input_dim
        h = tf.transpose(tf.reshape(x, (-1, k, d)), (1, 0, 2))  # (k, n, d)
        if self.standardize is not None:
            mean, std = self.standardize
            h = (h - mean) / std
        for kernel, bias, act in zip(self.variables[0::2], self.variables[1::2], self.acts):
            h = act(tf.matmul(h, kernel) + tf.expand_dims(bias, 1))
        return tf.reshape(tf.transpose(h, (1, 0, 2)), (-1, 1))  # (n·k, 1), interleaved


def per_replicate(t: tf.Tensor, k: int) -> tf.Tensor:
    """An interleaved per-point tensor ``(n·k, 1)`` as ``(n, k)``: column r is replicate r."""
    return tf.reshape(t, (-1, k))


def replicate_norm(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """‖concat of replicate r's slices‖ for every r: ``(k,)`` (the per-replicate global norm).

    One concatenation and one reduction over static shapes, as the single run's global norm: a
    norm per tensor with dynamic reshapes took three times the ops in every step."""
    k = int(tensors[0].shape[0])
    flat = tf.concat([tf.reshape(t, (k, -1)) for t in tensors], axis=1)
    return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))


def interleave(sets: Sequence[np.ndarray]) -> np.ndarray:
    """k arrays ``(n, d)`` (one per replicate, same n) as one ``(n·k, d)`` in the interleaved layout."""
    first = np.asarray(sets[0])
    return np.stack([np.asarray(s) for s in sets], axis=1).reshape(first.shape[0] * len(sets), *first.shape[1:])
