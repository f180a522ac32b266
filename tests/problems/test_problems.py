"""Contract tests, once for every registered problem (and every parameter variant that has an
exact solution): the exact solution has a near-zero residual in every term, samples are
reproducible from the seed, and the declared terms are the ones produced."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pinnlab.numerics.derivatives import parse_derivative
from pinnlab.problems import PROBLEMS, Problem, resolve_problem
from pinnlab.problems.base import Params
from tests.user_problem import Heat1D

# Every registered problem, with parameters under which its exact solution is known.
VARIANTS = {
    "seed": [{"constraint": "dirichlet", "solution": "poly"}, {"constraint": "dirichlet", "solution": "exp_sin"}],
    "poisson2d": [{}],
    "convection1d": [{"beta": 1.0}, {"beta": 30.0}],
    "helmholtz2d": [{}, {"a1": 2.0, "a2": 3.0, "lam": 5.0}],
    "poisson1d": [{}, {"a": 2.5, "n_residual": 64, "n_boundary": 10}],
}
CASES = [(name, params) for name in PROBLEMS.names() for params in VARIANTS[name]]


def test_every_registered_problem_has_variants_here():
    assert set(VARIANTS) == set(PROBLEMS.names())


def _tensors(sets):
    return {k: tf.constant(v, tf.float64) for k, v in sets.items()}


@pytest.mark.parametrize("name,params", CASES, ids=lambda v: str(v))
def test_exact_solution_has_near_zero_residual(name, params):
    problem = resolve_problem(name, params)
    assert isinstance(problem, Problem)
    assert problem.has_exact
    sets = _tensors(problem.sample(np.random.default_rng(0)))
    terms, derivs = problem.residuals(problem.exact, sets)
    assert set(terms) == set(problem.term_names())
    scale = float(np.abs(problem.exact_numpy(problem.eval_points())).max())
    for term, r in terms.items():
        parts = r if isinstance(r, list) else [r]
        worst = max(float(tf.reduce_max(tf.abs(p))) for p in parts)
        # second derivatives of sin(4πy) are ~160x the solution: compare against that scale
        assert worst <= 1e-9 * max(1.0, scale) * 1e3, f"{name} {term}: residual {worst:g}"
    assert set(derivs) == set(problem.derivatives)


@pytest.mark.parametrize("name", PROBLEMS.names())
def test_sampling_is_reproducible_and_inside_the_domain(name):
    problem = resolve_problem(name, VARIANTS[name][0])
    a = problem.sample(np.random.default_rng(7))
    b = problem.sample(np.random.default_rng(7))
    assert a.keys() == b.keys() and "residual" in a
    lo, hi = problem.domain
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].shape[1] == len(problem.coords)
        assert (a[key] >= lo - 1e-12).all() and (a[key] <= hi + 1e-12).all(), key
    assert problem.point_counts() == {k: len(v) for k, v in a.items()}


@pytest.mark.parametrize("name", PROBLEMS.names())
def test_eval_points_and_heldout(name):
    problem = resolve_problem(name, VARIANTS[name][0])
    x = problem.eval_points()
    assert x.ndim == 2 and x.shape[1] == len(problem.coords) and len(x) >= 1000
    h = problem.heldout(np.random.default_rng(1), 512)
    assert h.shape[1] == len(problem.coords)
    train = problem.sample(np.random.default_rng(0))["residual"]
    # no held-out point coincides with a training point
    d = np.abs(h[:, None, :] - train[None, :200, :]).sum(-1)
    assert d.min() > 1e-9


METADATA_CLASSES = [cls for _, cls in PROBLEMS.items()] + [Heat1D]


@pytest.mark.parametrize("cls", METADATA_CLASSES, ids=lambda c: c.name)
def test_class_level_metadata(cls):
    """What config validation reads without TensorFlow agrees with what the computation uses."""
    assert issubclass(cls.Params, Params)
    assert len(set(cls.coords)) == len(cls.coords)
    assert cls.max_order == max((len(parse_derivative(n, cls.coords)) for n in cls.derivatives), default=0)
    assert not set(cls.residual_terms) & set(cls.constraint_terms)


SEED_CONSTRAINTS = [{"constraint": c} for c in ("none", "anchor", "dirichlet")]
ALL_VARIANTS = [(n, p) for n, p in CASES] + [("seed", p) for p in SEED_CONSTRAINTS]


@pytest.mark.parametrize("name,params", ALL_VARIANTS, ids=lambda v: str(v))
def test_terms_are_among_the_declared_ones(name, params):
    problem = resolve_problem(name, params)
    assert problem.max_order == type(problem).max_order
    terms = problem.term_names()
    assert terms[: len(problem.residual_terms)] == problem.residual_terms
    assert set(terms) <= set(problem.residual_terms) | set(problem.constraint_terms)


def test_seed_constraint_terms_are_all_reachable():
    produced = {t for p in SEED_CONSTRAINTS for t in resolve_problem("seed", p).constraint_names()}
    assert produced == set(PROBLEMS.get("seed").constraint_terms)


def test_seed_is_the_questions_grid():
    problem = resolve_problem("seed")
    x = problem.sample(np.random.default_rng(0))["residual"]
    np.testing.assert_array_equal(x, np.mgrid[-3.0:3.0:0.1, -3.0:3.0:0.1].reshape(2, -1).T)
    assert x.shape == (3600, 2)
    assert problem.term_names() == ("residual",) and not problem.has_exact
    assert problem.max_order == 2


def test_seed_literal_loss_differs_from_intended():
    """The question's literal loss uses the first sample and u_xy + u_yy in place of u_yy."""
    problem = resolve_problem("seed", {"literal": True})
    intended = resolve_problem("seed")
    f = lambda x: tf.sin(x[:, 0:1]) * tf.exp(0.5 * x[:, 1:2]) + x[:, 0:1] * x[:, 1:2] ** 2  # noqa: E731
    x = tf.constant([[0.3, -0.7], [1.0, 2.0]], tf.float64)
    lit, _ = problem.pde_residuals(f, x)
    ok, _ = intended.pde_residuals(f, x)
    assert lit["residual"].shape == (1, 1)
    u_xy = np.cos(0.3) * 0.5 * np.exp(-0.35) + 2 * (-0.7)
    np.testing.assert_allclose(float(lit["residual"][0, 0]), float(ok["residual"][0, 0]) + u_xy, rtol=1e-12)


def test_user_problem_by_import_path():
    problem = resolve_problem("tests.user_problem:Heat1D", {})
    assert problem.name == "heat1d"
    terms, _ = problem.residuals(problem.exact, _tensors(problem.sample(np.random.default_rng(0))))
    assert float(tf.reduce_max(tf.abs(terms["residual"]))) < 1e-10
