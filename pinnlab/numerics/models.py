"""Multilayer perceptrons and the activations they use.

``ACTIVATIONS`` maps each YAML name to an :class:`Activation`: the TensorFlow-free metadata of
:data:`pinnlab.core.names.ACTIVATIONS` (``vanishes_from``, the derivative order from which the
activation's derivatives are zero almost everywhere, and its note) with the Keras callable attached.
``INITIALIZERS`` attaches Keras initializer classes to :data:`pinnlab.core.names.INITIALIZERS`.

Layers are named ``dense_1 … dense_{depth+1}`` (the last is the output layer), independent of how
many models the process has built, so metric names such as ``weight_norm/dense_1/kernel`` mean the
same layer in every run of a sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from pinnlab.core import names
from pinnlab.core.registry import Registry

__all__ = ["Activation", "ACTIVATIONS", "INITIALIZERS", "build_mlp", "mlp_kwargs", "Standardize", "variable_name"]


@dataclass(frozen=True, kw_only=True)
class Activation(names.ActivationInfo):
    """An activation's metadata (name, ``vanishes_from``, note, ``degenerate_for``) and its callable."""

    fn: Callable[[tf.Tensor], tf.Tensor] | str  # a Keras activation name or a TF function


# Keras activation names, or TF functions where Keras has none.
_ACTIVATION_FNS: dict[str, Callable[[tf.Tensor], tf.Tensor] | str] = {
    "relu": "relu",
    "softplus": "softplus",
    "tanh": "tanh",
    "sin": tf.sin,
    "sigmoid": "sigmoid",
    "silu": "silu",
    "gelu": "gelu",
    "elu": "elu",
    "linear": "linear",
}
ACTIVATIONS: Registry[Activation] = Registry(names.ACTIVATIONS.kind)
for _name, _fn in _ACTIVATION_FNS.items():
    ACTIVATIONS.register(_name, Activation(**asdict(names.ACTIVATIONS.get(_name)), fn=_fn))

# Keras initializer classes by YAML name; each is built with an explicit seed (no global RNG state).
INITIALIZERS: Registry[type] = Registry(names.INITIALIZERS.kind)
for _name, _cls in [
    ("glorot_normal", keras.initializers.GlorotNormal),
    ("glorot_uniform", keras.initializers.GlorotUniform),
    ("he_normal", keras.initializers.HeNormal),
    ("he_uniform", keras.initializers.HeUniform),
    ("lecun_normal", keras.initializers.LecunNormal),
    ("lecun_uniform", keras.initializers.LecunUniform),
]:
    INITIALIZERS.register(_name, _cls)


@keras.saving.register_keras_serializable(package="pinnlab")
class Standardize(keras.layers.Layer):
    """``x -> (x - mean) / std`` with fixed per-coordinate constants (not trained)."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def call(self, x):
        mean = tf.constant(self.mean, dtype=x.dtype)
        std = tf.constant(self.std, dtype=x.dtype)
        return (x - mean) / std

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def uniform_moments(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the uniform distribution on the box [lo, hi]."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return (lo + hi) / 2, (hi - lo) / math.sqrt(12.0)


def build_mlp(
    *,
    input_dim: int,
    width: int,
    depth: int,
    activation: str,
    output_activation: str = "linear",
    initializer: str = "glorot_uniform",
    dtype: str = "float32",
    seed: int = 0,
    standardize: tuple[np.ndarray, np.ndarray] | None = None,
    architecture: str = "mlp",
) -> keras.Model:
    """``input_dim -> depth × Dense(width, activation) -> Dense(1, output_activation)``, or with
    ``architecture="modified_mlp"`` the gated network of :func:`_modified_mlp`.

    ``standardize = (mean, std)`` prepends a fixed :class:`Standardize` layer.  Each Dense layer's
    kernel initializer gets its own seed derived from ``seed``; biases start at zero.
    """
    act = ACTIVATIONS.get(activation, "model.activation")
    out_act = ACTIVATIONS.get(output_activation, "model.output_activation")
    init_cls = INITIALIZERS.get(initializer, "model.initializer")

    def dense(i: int, units: int, activation: Activation, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            units,
            activation=activation.fn,
            kernel_initializer=init_cls(seed=seed * 1000 + i),
            bias_initializer="zeros",
            dtype=dtype,
            name=name,
        )

    if architecture == "modified_mlp":
        return _modified_mlp(input_dim, width, depth, act, out_act, dense, dtype, standardize)
    layers: list[keras.layers.Layer] = [keras.Input((input_dim,), dtype=dtype)]
    if standardize is not None:
        layers.append(Standardize(*standardize, dtype=dtype, name="standardize"))
    for i in range(depth + 1):
        last = i == depth
        layers.append(dense(i, 1 if last else width, out_act if last else act, f"dense_{i + 1}"))
    return keras.Sequential(layers, name="mlp")


def _modified_mlp(input_dim, width, depth, act, out_act, dense, dtype, standardize) -> keras.Model:
    """Wang, Teng & Perdikaris (2021)'s improved fully-connected network: two encoders of the input,
    U = σ(x W_u + b_u) and V = σ(x W_v + b_v), and every hidden layer h ← z⊙U + (1 − z)⊙V with
    z = σ(h W + b) (h = x before the first); the output layer is linear in h, as in an MLP.  The
    encoders (``encoder_1``, ``encoder_2``) take the kernel seeds after the Dense layers'."""
    x = inputs = keras.Input((input_dim,), dtype=dtype)
    if standardize is not None:
        x = Standardize(*standardize, dtype=dtype, name="standardize")(x)
    u = dense(depth + 1, width, act, "encoder_1")(x)
    v = dense(depth + 2, width, act, "encoder_2")(x)
    h = x
    for i in range(depth):
        z = dense(i, width, act, f"dense_{i + 1}")(h)
        h = z * u + (1.0 - z) * v
    out = dense(depth, 1, out_act, f"dense_{depth + 1}")(h)
    return keras.Model(inputs, out, name="modified_mlp")


def mlp_kwargs(model_cfg, problem) -> dict:
    """:func:`build_mlp`'s arguments (all but ``seed``) for ``model.*`` of a config and a problem."""
    m = model_cfg
    return dict(
        input_dim=len(problem.coords),
        width=m.width,
        depth=m.depth,
        activation=m.activation,
        output_activation=m.output_activation,
        initializer=m.initializer,
        dtype=m.dtype,
        standardize=uniform_moments(*problem.domain) if m.standardize else None,
        architecture=m.architecture,
    )


def variable_name(var) -> str:
    """``dense_1/kernel`` for a Keras 3 variable whose path is ``mlp/dense_1/kernel``."""
    parts = var.path.split("/")
    return "/".join(parts[-2:])
