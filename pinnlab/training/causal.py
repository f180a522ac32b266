"""Causal weighting of the PDE residual: ``loss.weighting.scheme: causal``.

Wang, Sankaran & Perdikaris, "Respecting causality for training physics-informed neural networks"
(CMAME 2024): a PINN that fits all times at once can settle on a solution that is wrong from early
times on (it fits the residual at late times before the initial condition has propagated there).
Causal training cuts the time interval into M equal chunks (``loss.weighting.causal_chunks``), takes
the mean square residual L_i of the collocation points in chunk i, and replaces the residual loss by

    L_r = (1/M) Σ_i w_i L_i,    w_i = exp(−ε Σ_{k<i} L_k),    ε = ``loss.weighting.causal_epsilon``,

with the weights held constant in the gradient (``tf.stop_gradient``, as the authors' jaxpi code
does).  A chunk's weight stays near 0 until every earlier chunk is fitted, so training marches
forward in time.  ``causal/w_min`` (the smallest weight, per step) is logged: it reaches 1 when the
residual is small at every time.

The weights are computed per replicate (the chunk sums reduce over the points of each replicate
only), so stacked replicates and batched sweep trials get each run's own weights.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["causal_loss"]


def causal_loss(r: tf.Tensor, t: tf.Tensor, t_range: tuple[float, float], chunks: int, epsilon: float, k: int):
    """``(L_r, w_min)`` of residuals ``r`` (``(n·k, 1)``, the replicates interleaved) at times ``t``
    (``(n·k,)``): per replicate, a ``(k,)`` vector for k > 1 and a scalar for one run."""
    lo, hi = t_range
    dtype = r.dtype
    sq = tf.reshape(tf.square(r), (-1, k))  # (n, k): column j is replicate j
    pos = (tf.reshape(t, (-1, k)) - lo) / (hi - lo)
    chunk = tf.clip_by_value(tf.cast(tf.floor(pos * chunks), tf.int32), 0, chunks - 1)
    onehot = tf.one_hot(chunk, chunks, dtype=dtype)  # (n, k, M)
    sums = tf.reduce_sum(sq[:, :, None] * onehot, axis=0)  # (k, M)
    counts = tf.reduce_sum(onehot, axis=0)
    per_chunk = sums / tf.maximum(counts, 1.0)
    w = tf.stop_gradient(tf.exp(-epsilon * tf.cumsum(per_chunk, axis=1, exclusive=True)))
    loss = tf.reduce_mean(w * per_chunk, axis=1)
    w_min = tf.reduce_min(w, axis=1)
    return (loss[0], w_min[0]) if k == 1 else (loss, w_min)
