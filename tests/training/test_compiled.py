"""Compiled functions that run eagerly for their first calls in a run (pinnlab.training.compiled)."""

from __future__ import annotations

import numpy as np
import pytest

from pinnlab.backend import import_tensorflow
from pinnlab.config import load_config

tf = import_tensorflow()

from pinnlab.training.compiled import Compiled  # noqa: E402
from pinnlab.training.trainer import Trainer  # noqa: E402

_DIAG = load_config("seed").diagnostics
EAGER_CALLS, EAGER_CHECKS = _DIAG.eager_calls, _DIAG.eager_checks  # the config's defaults


def test_eager_for_the_first_calls_of_a_trainers_life_then_traced_once():
    traced = []

    def fn(x):
        traced.append(tf.executing_eagerly())
        return x * 2.0

    f = Compiled(fn, eager_calls=3, autograph=False)
    x = tf.constant([1.0, 2.0])
    for _ in range(5):
        np.testing.assert_array_equal(f(x).numpy(), [2.0, 4.0])
    # three eager calls, then one trace (in graph mode) serving calls 4 and 5
    assert traced == [True, True, True, False]
    assert f.function.experimental_get_tracing_count() == 1
    g = Compiled(fn, eager_calls=3, autograph=False)
    g.plan(2)  # a run of 2 calls within the budget: eager
    g(x), g(x)
    g.plan(2)  # 2 more would spend it (4 > 3): compiled from this run's first call
    g(x), g(x)
    g.plan(1)
    g(x)
    assert traced[4:] == [True, True, False] and g.function.experimental_get_tracing_count() == 1


def test_a_reused_trainer_goes_on_counting_its_eager_calls_and_checks():
    """Over a trainer's runs (pinnlab.training.reuse), the diagnostics and the sharpness check run
    eagerly until their budgets are spent, then trace once."""
    from pinnlab.training.reuse import reset

    shared = ["training.steps=1", "model.width=8", "diagnostics.every=1"]
    t = Trainer(load_config("seed", shared))
    d = t.diagnostics
    runs = 0
    while d.measure.calls <= EAGER_CALLS or d.sharpness.compiled_hvp.calls <= EAGER_CHECKS:
        if runs:
            reset(t, load_config("seed", shared + [f"training.seed={runs}"]))
        result = t.fit()
        assert result.outcome == "stable"
        runs += 1
        compiled_calls = max(0, d.measure.calls - EAGER_CALLS)
        assert d.measure.function.experimental_get_tracing_count() == min(1, compiled_calls)
        assert d.sharpness.compiled_hvp.function.experimental_get_tracing_count() == min(
            1, max(0, d.sharpness.compiled_hvp.calls - EAGER_CHECKS)
        )
    assert runs > EAGER_CHECKS  # several runs (one check each), one trace of each function


def test_the_sharpness_check_runs_eagerly_then_traces_once_however_many_hvps_each_took():
    cfg = load_config("seed", ["training.steps=3", "model.width=16", "training.batch_size=3600"])
    t = Trainer(cfg)
    points = t._tensors(t.train_points)
    s = t.diagnostics.sharpness
    calls = []
    product = s._product

    def counting(*args):
        calls.append(tf.executing_eagerly())
        return product(*args)

    s.compiled_hvp.function = tf.function(counting, jit_compile=False, autograph=False)
    # the ratio is known to 5 % of itself, or to 0.05 below the threshold (sharpness_tol)
    first = s(points)[0]
    ratio = first["sharpness/ratio"]
    for _ in range(EAGER_CHECKS - 1):
        assert s(points)[0]["sharpness/ratio"] == pytest.approx(ratio, abs=0.05 * max(ratio, 1.0))
    assert calls == [] and s.compiled_hvp.function.experimental_get_tracing_count() == 0  # all eager
    assert s(points)[0]["sharpness/ratio"] == pytest.approx(ratio, abs=0.05 * max(ratio, 1.0))
    assert s.compiled_hvp.function.experimental_get_tracing_count() == 1 and calls == [False]  # one trace, 3 HVPs
    s.reset()  # a reused trainer's next run: a cold check, compiled (the trace is paid for)
    assert s(points)[0]["sharpness/top"] == pytest.approx(first["sharpness/top"], rel=1e-4)
    assert s.compiled_hvp.function.experimental_get_tracing_count() == 1


def test_a_check_run_eagerly_gives_the_compiled_products():
    """The eager first check's products (one recorded gradient for all) equal the compiled HVP's."""
    cfg = load_config("seed", ["training.steps=3", "model.width=16", "optimizer.name=adam"])
    t = Trainer(cfg)
    points = {k: tf.constant(v[:10], t.dtype) for k, v in t.train_points.items()}
    s = t.diagnostics.sharpness
    rng = np.random.default_rng(0)
    for precond in (None, [tf.constant(rng.uniform(0.5, 2.0, w.shape), w.dtype) for w in t.vars]):
        eager = s._products(points, precond)
        for _ in range(3):  # several products on the same recorded gradient
            v = [tf.constant(rng.standard_normal(w.shape), w.dtype) for w in t.vars]
            av_eager, g2_eager = eager(v)
            av_compiled, g2_compiled = s.compiled_hvp.function(points, v, precond)
            for a, b in zip(av_compiled, av_eager):
                scale = float(tf.reduce_max(tf.abs(b)))
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6 * scale)
            assert (g2_eager is None) == (precond is None) == (g2_compiled is None)
            if precond is not None:
                np.testing.assert_allclose(float(g2_compiled), float(g2_eager), rtol=1e-4)


def test_eager_and_compiled_diagnostics_agree():
    """The step-0 diagnostics run eagerly and later ones compiled: both compute the same numbers."""
    cfg = load_config("seed", ["training.steps=3", "model.width=16", "diagnostics.sharpness_cold_iters=4"])
    t = Trainer(cfg)
    points = {k: tf.constant(v[:10], t.dtype) for k, v in t.train_points.items()}
    d = t.diagnostics
    eager = {k: float(v) for k, v in d.measure.python_function(points).items()}
    compiled = {k: float(v) for k, v in d.measure.function(points).items()}
    assert eager.keys() == compiled.keys() and len(eager) > 5
    for key, value in eager.items():
        np.testing.assert_allclose(compiled[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    s = d.sharpness
    v = [tf.ones_like(w) for w in t.vars]
    for precond in (None, [tf.fill(w.shape, 0.5) for w in t.vars]):  # plain and preconditioned HVP
        av_eager, g2_eager = s._product(points, v, precond)
        av_compiled, g2_compiled = s.compiled_hvp.function(points, v, precond)
        for a, b in zip(av_compiled, av_eager):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6 * float(tf.reduce_max(tf.abs(b))))
        if precond is None:
            assert g2_eager is None and g2_compiled is None
        else:
            np.testing.assert_allclose(float(g2_compiled), float(g2_eager), rtol=1e-4)
    plain, _ = s._product(points, v, None)
    halved, _ = s._product(points, [x * 0.5 for x in v], [tf.fill(w.shape, 0.5) for w in t.vars])
    for a, b in zip(plain, halved):  # D H D v with D = 1/2 and v halved: H v / 8
        np.testing.assert_allclose(b.numpy(), a.numpy() / 8, rtol=1e-5, atol=1e-7 * float(tf.reduce_max(tf.abs(a))))


def test_eager_costs_benchmark_measures_every_function_and_equal_products():
    """benchmarks/speed/eager_costs.py on one small network: every function measured three ways, the
    cold check's HVPs counted, and the HVPs on one recorded gradient bitwise those of separate ones."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.speed.eager_costs import measure_case

    case = measure_case("seed", ["model.width=5"])
    for part in ("diagnostics", "update_ratio", "prediction"):
        assert set(case[part]) == {"eager", "trace_and_first_call", "compiled"}
        assert all(v > 0 for v in case[part].values())
    check = case["sharpness_check"]
    assert 3 <= check["hvps"] <= 12 and check["eager"] > 0 and check["hvp_trace_and_first_call"] > 0
    assert case["six_hvps"]["bitwise_equal"] is True


def test_a_run_longer_than_the_eager_budget_runs_compiled_from_its_first_call():
    """A run's checks are known at its start (its budget / diagnostics.every): when they would spend
    the eager budget, the diagnostics and the sharpness check are compiled from the first call."""
    cfg = load_config("seed", ["training.steps=200", "model.width=8", "diagnostics.every=10"])
    assert 200 // 10 + 1 > EAGER_CALLS and 200 // 10 > EAGER_CHECKS
    t = Trainer(cfg)
    d = t.diagnostics
    t.fit()
    assert d.measure.calls == 20 and d.measure.eager_calls == 0  # no eager call
    assert d.measure.function.experimental_get_tracing_count() == 1  # traced once, at step 0
    assert (
        d.sharpness.compiled_hvp.calls == 20 and d.sharpness.compiled_hvp.function.experimental_get_tracing_count() == 1
    )
    short = Trainer(load_config("seed", ["training.steps=30", "model.width=8", "diagnostics.every=10"]))
    short.fit()  # 3 checks: eager, nothing traced
    assert short.diagnostics.measure.function.experimental_get_tracing_count() == 0
    assert short.diagnostics.sharpness.compiled_hvp.function.experimental_get_tracing_count() == 0
