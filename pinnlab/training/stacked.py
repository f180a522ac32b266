"""k independent MLPs stacked along a leading replicate axis, evaluated in one batched matmul chain.

Why: the networks pinnlab trains (2 -> 100 -> 1) are far too small to keep even two cores busy; a
step is dominated by per-op overhead, so k networks in one op chain cost much less than k runs.

Layout of points (the *interleaved* layout): a point set of one replicate has ``n`` rows; the k
replicates' sets are stacked as ``(n, k, d)`` and flattened to ``(n·k, d)``, so row ``i·k + r``
is point ``i`` of replicate ``r``.  The network reshapes to ``(k, n, d)`` internally (one transpose
at the input, one at the output) and multiplies by kernels ``(k, fan_in, fan_out)``; row ``i·k+r``
of the output depends only on that row of the input and on replicate ``r``'s weights.  So

* a problem's ``residuals(net, points)`` runs unchanged: derivatives taken with a tape over the sum
  of the outputs (what :func:`pinnlab.derivatives.partials` does) are exact per row, hence per
  replicate (d(Σ_r u_r)/dx_r = du_r/dx_r for independent networks);
* a problem that splits a set into equal parts along its rows (helmholtz2d's four edges) splits
  every replicate the same way, because the parts are contiguous blocks of ``i``;
* a term is reduced per replicate by reshaping ``(n·k, 1)`` to ``(n, k)`` and reducing axis 0.

The replicate-major layout (rows ``r·n + i``) needs no transposes but breaks the second point;
a Python loop over replicates (k separate networks in one graph) keeps every problem working but
costs k times the op overhead, which is what this module exists to avoid.

Initial weights: replicate ``r`` with seed ``s`` gets exactly the draws a separate run with seed
``s`` gets from :func:`pinnlab.models.build_mlp` (the same initializer class and seed per layer,
``s·1000 + i``, called with the same shape); biases start at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from pinnlab.models import ACTIVATIONS, INITIALIZERS

__all__ = ["StackedMLP", "per_replicate", "replicate_norm", "interleave"]


def _activation(name: str, field: str):
    fn = ACTIVATIONS.get(name, field).fn
    return keras.activations.get(fn) if isinstance(fn, str) else fn


class StackedMLP:
    """``k`` copies of :func:`pinnlab.models.build_mlp`'s network, one per seed in ``seeds``.

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
    ):
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
            h = act(tf.matmul(h, kernel) + bias[:, None, :])
        return tf.reshape(tf.transpose(h, (1, 0, 2)), (-1, 1))  # (n·k, 1), interleaved


def per_replicate(t: tf.Tensor, k: int) -> tf.Tensor:
    """An interleaved per-point tensor ``(n·k, 1)`` as ``(n, k)``: column r is replicate r."""
    return tf.reshape(t, (-1, k))


def replicate_norm(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """‖concat of replicate r's slices‖ for every r: ``(k,)`` (the per-replicate global norm)."""
    sq = [tf.reduce_sum(tf.reshape(tf.square(t), (tf.shape(t)[0], -1)), axis=1) for t in tensors]
    return tf.sqrt(tf.add_n(sq))


def interleave(sets: Sequence[np.ndarray]) -> np.ndarray:
    """k arrays ``(n, d)`` (one per replicate, same n) as one ``(n·k, d)`` in the interleaved layout."""
    first = np.asarray(sets[0])
    return np.stack([np.asarray(s) for s in sets], axis=1).reshape(first.shape[0] * len(sets), *first.shape[1:])
