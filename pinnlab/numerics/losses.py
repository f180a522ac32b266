"""Loss formulations and loss-term weighting.

A problem turns the network into *residuals*: a ``dict[str, Tensor]`` of per-point tensors
``(batch, 1)`` keyed by term name (``residual``, ``boundary``, ``initial``, ...).  A *formulation*
reduces one residual to a scalar; a *weighting* multiplies each scalar by λ_term.  The same keys
name everything downstream: ``loss/boundary``, ``lambda/boundary``, ``grad_norm/boundary``.

Formulations (``FORMULATIONS``) attach a TensorFlow function ``(r, delta, axis=None) -> scalar`` to each name of
:data:`pinnlab.core.names.FORMULATIONS`, which holds their formulas and which are bounded below (all but
``raw``, the seed question's mean(r)).  ``axis`` reduces one axis only: stacked replicates reduce
``(n, k)`` over axis 0 to one loss per replicate (:mod:`pinnlab.training.replicas`).

Weighting schemes: ``fixed`` (``loss.weights``) and ``grad_norm``: learning-rate annealing of Wang,
Teng & Perdikaris (2021) in the form of the authors' reference code, with the *weighted* term in the
denominator (:func:`grad_norm_lambda_hat`).  With the unweighted term, λ ran away to ~1e9 on
helmholtz2d (zero boundary values) and the network collapsed to u ≈ 0; the weighted form has the
fixed point λ² = max|∇L_r| / mean|∇L_bc| and settles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import tensorflow as tf

from pinnlab.core import names
from pinnlab.core.registry import Registry

__all__ = ["FORMULATIONS", "formulation", "grad_norm_lambda_hat", "penalties"]

Formulation = Callable[..., tf.Tensor]  # (r, delta, axis=None) -> scalar, or (k,) with an axis
FORMULATIONS: Registry[Formulation] = Registry(names.FORMULATIONS.kind)


@FORMULATIONS.register("raw")
def _raw(r, delta, axis=None):
    return tf.reduce_mean(r, axis=axis)


@FORMULATIONS.register("abs")
def _abs(r, delta, axis=None):
    return tf.reduce_mean(tf.abs(r), axis=axis)


@FORMULATIONS.register("squared")
def _squared(r, delta, axis=None):
    return tf.reduce_mean(tf.square(r), axis=axis)


@FORMULATIONS.register("huber")
def _huber(r, delta, axis=None):
    a = tf.abs(r)
    quad = tf.minimum(a, delta)
    return tf.reduce_mean(0.5 * tf.square(quad) + delta * (a - quad), axis=axis)


@FORMULATIONS.register("log_cosh")
def _log_cosh(r, delta, axis=None):
    a = tf.abs(r)  # log cosh r = |r| + log(1 + exp(-2|r|)) - log 2, finite for any |r|
    return tf.reduce_mean(a + tf.math.softplus(-2.0 * a) - math.log(2.0), axis=axis)


def formulation(name: str) -> Formulation:
    return FORMULATIONS.get(name, "loss.formulation")


def penalties(weights: Sequence[tf.Variable], l2: float, l1: float) -> dict[str, tf.Tensor]:
    """Regularisation terms ``{"l2": l2·Σ‖w‖², "l1": l1·Σ|w|}`` (only those with a coefficient).

    ``weights`` are the penalised variables: the kernels, and the biases too with
    ``regularization.include_biases``.
    """
    out: dict[str, tf.Tensor] = {}
    if l2 > 0:
        out["l2"] = l2 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights])
    if l1 > 0:
        out["l1"] = l1 * tf.add_n([tf.reduce_sum(tf.abs(w)) for w in weights])
    return out


def grad_norm_lambda_hat(residual_grads: Sequence[tf.Tensor], weighted_term_grads: Sequence[tf.Tensor]) -> tf.Tensor:
    """λ̂ = max_θ |∇θ L_r| / mean over layers of mean_θ |∇θ (λ·L_term)| (kernels only).

    Both arguments are gradients with respect to the kernels, layer by layer.  Returns a scalar.
    """
    num = tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(g)) for g in residual_grads]))
    den = tf.reduce_mean(tf.stack([tf.reduce_mean(tf.abs(g)) for g in weighted_term_grads]))
    tiny = tf.constant(1e-30, den.dtype)
    return num / tf.maximum(den, tiny)
