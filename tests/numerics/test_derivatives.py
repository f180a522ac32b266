"""Derivatives against analytic values (up to order 4) and central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pinnlab.numerics.derivatives import (
    canonical,
    derivative,
    derivative_name,
    gradient,
    gradient_of_sum,
    laplacian,
    parse_derivative,
    partials,
)
from pinnlab.numerics.models import build_mlp

RNG = np.random.default_rng(1234)


def points(dtype, n=7, d=2, scale=1.0):
    return tf.constant(RNG.uniform(-scale, scale, (n, d)), dtype)


def paraboloid(x):  # z = x² + y²
    return tf.reduce_sum(tf.square(x), axis=1, keepdims=True)


def transcendental(x):  # z = sin(x)·exp(2y)
    return tf.sin(x[:, 0:1]) * tf.exp(2.0 * x[:, 1:2])


def analytic_transcendental(index, x):
    """∂^(a+b) / ∂x^a ∂y^b of sin(x) e^(2y) = sin^(a)(x) · 2^b e^(2y)."""
    a = index.count(0)
    b = index.count(1)
    X, Y = x[:, 0:1], x[:, 1:2]
    sin_deriv = [np.sin, np.cos, lambda t: -np.sin(t), lambda t: -np.cos(t)][a % 4](X)
    return sin_deriv * 2.0**b * np.exp(2.0 * Y)


ALL_UP_TO_4 = [idx for order in range(1, 5) for idx in sorted({canonical(c) for c in np.ndindex(*([2] * order))})]


@pytest.mark.parametrize("dtype,rtol", [(tf.float32, 1e-5), (tf.float64, 1e-10)])
def test_paraboloid_first_and_second(dtype, rtol):
    x = points(dtype)
    u, d = partials(paraboloid, x, [(0,), (1,), (0, 0), (1, 1), (0, 1)])
    xn = x.numpy()
    np.testing.assert_allclose(u.numpy()[:, 0], (xn**2).sum(1), rtol=rtol)
    np.testing.assert_allclose(d[(0,)].numpy()[:, 0], 2 * xn[:, 0], rtol=rtol)
    np.testing.assert_allclose(d[(1,)].numpy()[:, 0], 2 * xn[:, 1], rtol=rtol)
    np.testing.assert_allclose(d[(0, 0)].numpy(), 2.0, rtol=rtol)
    np.testing.assert_allclose(d[(1, 1)].numpy(), 2.0, rtol=rtol)
    np.testing.assert_allclose(d[(0, 1)].numpy(), 0.0, atol=rtol)


@pytest.mark.parametrize("dtype,rtol", [(tf.float32, 1e-5), (tf.float64, 1e-10)])
@pytest.mark.parametrize("index", ALL_UP_TO_4, ids=lambda i: derivative_name(i, "xy"))
def test_transcendental_every_index_up_to_order_4(dtype, rtol, index):
    x = points(dtype, scale=0.5)
    got = derivative(transcendental, x, index).numpy()
    want = analytic_transcendental(index, x.numpy().astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_mixed_order_is_symmetric_and_canonical():
    x = points(tf.float64)
    a = derivative(transcendental, x, (1, 0, 1)).numpy()
    b = derivative(transcendental, x, (0, 1, 1)).numpy()
    np.testing.assert_array_equal(a, b)
    assert parse_derivative("u_yxy", "xy") == (0, 1, 1)
    assert derivative_name((0, 1, 1), ("x", "y")) == "u_xyy"


def _mlp64(architecture="mlp", d=3, seed=0):
    return build_mlp(
        input_dim=d, width=16, depth=2, activation="tanh", dtype="float64", seed=seed, architecture=architecture
    )


def _central_fd(f, x, i, h):
    e = np.zeros_like(x)
    e[:, i] = h
    return (f(x + e) - f(x - e)) / (2 * h)


@pytest.mark.parametrize("architecture", ["mlp", "modified_mlp"])
@pytest.mark.parametrize("index", [(0,), (2,), (0, 0), (1, 2), (0, 1, 2), (2, 2, 2)], ids=str)
def test_random_mlp_matches_central_finite_differences(index, architecture):
    """Derivatives of a random float64 network (an MLP, or the gated modified MLP) agree with
    nested central differences."""
    net = _mlp64(architecture)
    x = RNG.uniform(-1, 1, (5, 3))
    f = lambda z: net(tf.constant(z)).numpy()  # noqa: E731
    h = {1: 1e-5, 2: 1e-4, 3: 1e-3}[len(index)]
    fd = f
    for i in index:  # apply one central difference per coordinate in the index
        fd = (lambda g, i: lambda z: _central_fd(g, z, i, h))(fd, i)
    want = fd(x)
    got = derivative(net, tf.constant(x), index).numpy()
    tol = {1: 1e-8, 2: 1e-6, 3: 1e-4}[len(index)]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_gradient_and_laplacian_shapes_and_values():
    x = points(tf.float64, n=4, d=3)
    g = gradient(paraboloid, x).numpy()
    np.testing.assert_allclose(g, 2 * x.numpy(), rtol=1e-12)
    lap = laplacian(paraboloid, x).numpy()
    assert lap.shape == (4, 1)
    np.testing.assert_allclose(lap, 6.0, rtol=1e-12)


def test_works_inside_tf_function_and_xla_with_weight_gradient():
    """Laplacian inside a compiled function, differentiated w.r.t. the weights, matches eager."""
    net = _mlp64(d=2, seed=3)
    x = points(tf.float64, n=6)

    def loss():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(tf.square(laplacian(net, x)))
        grads = tape.gradient(value, net.trainable_variables)
        # the output bias does not enter the Laplacian: its gradient is None
        return value, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, net.trainable_variables)]

    eager_val, eager_grads = loss()
    for jit in (False, True):
        val, grads = tf.function(loss, jit_compile=jit)()
        np.testing.assert_allclose(val.numpy(), eager_val.numpy(), rtol=1e-10)
        for g, e in zip(grads, eager_grads):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-8, atol=1e-12)


def test_unconnected_derivative_is_zero_not_none():
    """A linear network has no second derivative: zeros, explicitly."""
    net = build_mlp(input_dim=2, width=4, depth=1, activation="linear", dtype="float64")
    d = derivative(net, points(tf.float64), (1, 1)).numpy()
    np.testing.assert_array_equal(d, 0.0)


def test_gradient_of_sum_mixes_coordinates_as_the_question_did():
    """K.gradients(K.gradients(u, x), x)[:, 1] is u_xy + u_yy, not u_yy."""
    x = points(tf.float64)
    df1, df2 = gradient_of_sum(transcendental, x)
    _, d = partials(transcendental, x, [(0,), (0, 1), (1, 1)])
    np.testing.assert_allclose(df1[:, 0:1].numpy(), d[(0,)].numpy(), rtol=1e-12)
    np.testing.assert_allclose(df2[:, 1:2].numpy(), (d[(0, 1)] + d[(1, 1)]).numpy(), rtol=1e-12)
    assert np.abs(df2[:, 1:2].numpy() - d[(1, 1)].numpy()).min() > 1e-3


def test_bad_multi_index_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        partials(paraboloid, points(tf.float64), [(2,)])
