"""Loss formulations, regularisation penalties and the grad_norm weight, against values worked out
by hand on small tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from pinnlab.core import names
from pinnlab.core.errors import UnknownNameError
from pinnlab.numerics.losses import formulation, grad_norm_lambda_hat, penalties

R = [-2.0, 0.0, 0.5, 3.0]  # |r| below, at and above the Huber thresholds used here


def _lc(x):
    return math.log(math.cosh(x))


# name -> delta -> mean over R, worked out term by term
HAND = {
    "raw": {1.0: (-2 + 0 + 0.5 + 3) / 4},
    "abs": {1.0: (2 + 0 + 0.5 + 3) / 4},
    "squared": {1.0: (4 + 0 + 0.25 + 9) / 4},
    # huber_δ(r) = r²/2 for |r| <= δ, else δ(|r| - δ/2)
    "huber": {1.0: (1.5 + 0 + 0.125 + 2.5) / 4, 2.0: (2.0 + 0 + 0.125 + 4.0) / 4},
    "log_cosh": {1.0: (_lc(2) + 0 + _lc(0.5) + _lc(3)) / 4},
}
CASES = [(n, d, v) for n, by_delta in HAND.items() for d, v in by_delta.items()]


def test_every_formulation_has_hand_values():
    assert set(HAND) == set(names.FORMULATIONS.names())


@pytest.mark.parametrize("name, delta, expected", CASES)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_formulation_hand_values(name, delta, expected, dtype):
    r = tf.constant(R, dtype)[:, None]
    value = formulation(name)(r, delta)
    assert value.shape == () and value.dtype == dtype
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_log_cosh_is_finite_far_out():
    """log cosh r = |r| - log 2 + O(e^{-2|r|}); cosh itself overflows float32 past |r| ≈ 89."""
    r = tf.constant([[-1e4], [1e4]], tf.float32)
    assert float(formulation("log_cosh")(r, 1.0)) == pytest.approx(1e4 - math.log(2), rel=1e-6)


def test_unknown_formulation_names_the_field():
    with pytest.raises(UnknownNameError, match="loss.formulation: 'cubed' is not one of abs, huber"):
        formulation("cubed")


def test_penalties_over_kernels_and_biases():
    weights = [tf.Variable([[1.0, -2.0]]), tf.Variable([3.0])]  # a kernel and a bias
    out = penalties(weights, 0.1, 0.5)
    assert set(out) == {"l2", "l1"}
    assert float(out["l2"]) == pytest.approx(0.1 * (1 + 4 + 9))
    assert float(out["l1"]) == pytest.approx(0.5 * (1 + 2 + 3))


def test_penalties_without_coefficients_add_no_terms():
    assert penalties([tf.Variable([1.0])], 0.0, 0.0) == {}
    assert set(penalties([tf.Variable([1.0])], 0.0, 1.0)) == {"l1"}


def test_grad_norm_lambda_hat():
    # max |∇L_r| = 3; mean over layers of mean |∇(λ L_bc)| = mean(1, 4) = 2.5
    residual = [tf.constant([1.0, -3.0]), tf.constant([2.0])]
    weighted = [tf.constant([1.0, -1.0]), tf.constant([4.0])]
    assert float(grad_norm_lambda_hat(residual, weighted)) == pytest.approx(3 / 2.5)


def test_grad_norm_lambda_hat_with_zero_term_gradient_is_finite():
    value = grad_norm_lambda_hat([tf.constant([1.0])], [tf.constant([0.0])])
    assert np.isfinite(float(value)) and float(value) > 1e20
