"""Forecasts: the Lanczos sharpness estimate against a dense Hessian, the stability thresholds, and each
alarm rule on a constructed run (one that must fire, one that must not)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from pinnlab import load_config
from pinnlab.training.forecast import Forecaster
from pinnlab.training.sharpness import Sharpness, hessian_vector_product, lanczos_top, threshold

TINY64 = [
    "model.width=3",
    "model.dtype=float64",
    "model.activation=tanh",
    "model.output_activation=linear",
    "loss.formulation=squared",
    "problem.params.constraint=dirichlet",
    "training.batch_size=3600",
    "training.steps=2",
    "diagnostics.every=1",
    "diagnostics.sharpness_points=4000",
]


def _dense_hessian(trainer, points):
    shapes = [tuple(v.shape) for v in trainer.vars]
    sizes = [int(np.prod(s)) for s in shapes]
    n = sum(sizes)
    cols = []
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        parts = np.split(e, np.cumsum(sizes)[:-1])
        vec = [tf.constant(p.reshape(s), tf.float64) for p, s in zip(parts, shapes)]
        _, hv = hessian_vector_product(lambda: trainer._total(trainer._losses(points)[0]), trainer.vars, vec)
        cols.append(np.concatenate([h.numpy().ravel() for h in hv]))
    return np.stack(cols, axis=1)


def test_lanczos_matches_the_dense_hessian_in_float64():
    from pinnlab.training import Trainer

    # 13 weights: the Krylov space is exhausted after 13 HVPs, and the estimate is exact
    t = Trainer(load_config("seed", TINY64 + ["diagnostics.sharpness_cold_iters=200", "diagnostics.sharpness_tol=0"]))
    points = t._tensors(t.train_points)
    H = _dense_hessian(t, points)
    assert np.allclose(H, H.T, atol=1e-8 * np.abs(H).max())
    eig = np.linalg.eigvalsh((H + H.T) / 2)
    top = eig.max()  # the top of the spectrum, which the stability threshold bounds
    assert abs(eig.min()) > top  # the raw loss curves down harder than up: not the largest magnitude
    s = Sharpness(t)
    got = s(points)[0]["sharpness/top"]
    assert got == pytest.approx(top, rel=1e-6)
    # warm-started: 3 more steps from the converged Ritz vector stay on it
    assert s(points)[0]["sharpness/top"] == pytest.approx(top, rel=1e-6)


def _symmetric(n, top, seed=0):
    """A symmetric matrix with eigenvalues ``top`` and a spread in [-1, 1], and its spectrum."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = np.concatenate([[top], rng.uniform(-1, 1, n - 1)])
    return (q * values) @ q.T, values


def test_lanczos_finds_the_top_eigenvalue_sooner_than_power_iteration():
    A, _ = _symmetric(200, 1.3)
    start = np.random.default_rng(1).standard_normal(200)
    theta, y, steps, residual = lanczos_top(lambda v: A @ v, start, 12)
    assert steps == 12 and theta == pytest.approx(1.3, rel=1e-3)
    assert np.linalg.norm(A @ y - theta * y) == pytest.approx(residual, rel=1e-6)  # the bound is the residual
    v = start / np.linalg.norm(start)
    for _ in range(11):  # power iteration with the same 12 products
        v = A @ v / np.linalg.norm(A @ v)
    assert abs(v @ A @ v - 1.3) > 10 * abs(theta - 1.3)


def test_lanczos_reports_the_top_of_the_spectrum_not_the_largest_magnitude():
    """A loss that curves down harder (eigenvalue -5) than up (1.3): the stability threshold bounds
    the largest eigenvalue, so the estimate is 1.3, not -5."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    values = np.concatenate([[1.3, -5.0], rng.uniform(-1, 1, 98)])
    A = (q * values) @ q.T
    theta, y, _, residual = lanczos_top(lambda v: A @ v, rng.standard_normal(100), 40)
    assert theta == pytest.approx(1.3, rel=1e-6) and residual < 1e-6
    assert abs(y @ q[:, 0]) == pytest.approx(1.0, rel=1e-6)


def test_lanczos_stops_at_the_tolerance_not_before_min_iters_and_on_an_exhausted_space():
    A, _ = _symmetric(200, 5.0)
    start = np.random.default_rng(2).standard_normal(200)
    theta, _, steps, residual = lanczos_top(lambda v: A @ v, start, 50, min_iters=3, tol=0.05)
    assert 3 <= steps < 50 and residual <= 0.05 * abs(theta) and theta == pytest.approx(5.0, rel=0.05)
    full = lanczos_top(lambda v: A @ v, start, 50, min_iters=3, tol=0.0)  # on to machine precision
    assert full[2] > steps and full[3] < 1e-12 * 5.0 and full[0] == pytest.approx(5.0, rel=1e-12)
    _, _, steps, _ = lanczos_top(lambda v: A @ v, start, 50, min_iters=8, tol=1.0)
    assert steps == 8
    small, values = _symmetric(6, -4.0)  # an exhausted space: its top exactly, not the -4
    theta, _, steps, residual = lanczos_top(lambda v: small @ v, np.ones(6), 40)
    assert steps == 6 and residual == 0.0 and theta == pytest.approx(values.max(), rel=1e-9)


def test_lanczos_reports_nan_when_a_product_is_not_finite():
    calls = []

    def apply(v):
        calls.append(1)
        return np.arange(1.0, 5.0) * v * (np.inf if len(calls) == 2 else 1.0)

    theta, y, steps, residual = lanczos_top(apply, np.ones(4), 10)
    assert math.isnan(theta) and steps == 2 and math.isinf(residual) and np.all(np.isfinite(y))


def test_thresholds_of_each_optimizer():
    cfg = lambda name, **kw: SimpleNamespace(name=name, momentum=kw.get("momentum", 0.0))  # noqa: E731
    assert threshold(cfg("sgd"), 0.01) == pytest.approx(200.0)
    assert threshold(cfg("sgd", momentum=0.9), 0.01) == pytest.approx(380.0)
    assert threshold(cfg("adam"), 0.01) == pytest.approx(3800.0)  # 38 / eta at beta1 = 0.9
    assert threshold(cfg("rmsprop"), 0.01) == pytest.approx(200.0)
    assert threshold(cfg("lbfgs"), 0.01) is None
    with pytest.raises(ValueError, match="optimizer.name"):
        threshold(cfg("nesterov"), 0.01)


def test_sharpness_ratio_is_recorded_for_sgd_and_adam():
    from pinnlab.training import train

    base = ["model.width=4", "training.batch_size=3600", "training.steps=3", "diagnostics.every=1"]
    r = train("seed", base + ["optimizer.learning_rate=0.1"])
    h = r.history
    assert h["sharpness/ratio"].notna().all() and "sharpness/top" in r.final_metrics
    assert h["sharpness/ratio"].iloc[0] == pytest.approx(max(h["sharpness/top"].iloc[0], 0) * 0.1 / 2)
    a = train("seed", base + ["optimizer.name=adam"]).history
    assert math.isnan(a["sharpness/ratio"].iloc[0])  # no preconditioner before Adam's first update
    assert a["sharpness/ratio"].iloc[1:].notna().all() and a["adam/g2_over_v"].iloc[1:].notna().all()


# --------------------------------------------------------------------------- alarm rules


def _fake(losses, norms):
    return SimpleNamespace(rows=np.asarray(losses, float)[:, None], norms=np.asarray(norms, float))


def _run(forecaster, losses, norms, every=50, ratios=None):
    rec = _fake(losses, norms)
    for i, step in enumerate(range(0, len(losses), every)):
        diag = {} if ratios is None else {"sharpness/ratio": ratios[i]}
        if forecaster.check(step, diag, rec):
            return forecaster.alarm
    return None


def _forecaster(unbounded=(), budget=1000, *overrides):
    return Forecaster(load_config("seed", list(overrides)).divergence, budget, list(unbounded))


def test_sharpness_alarm_before_the_first_update_past_the_catapult_range_only():
    flat = np.ones(400)
    a = _run(_forecaster(), flat, flat, ratios=[2.5] + [0.5] * 7)
    assert a.signal == "sharpness" and a.step == 0 and a.value == 2.5
    # 1-2x the threshold at the start can recover by a catapult; a later single spike is not an alarm
    assert _run(_forecaster(), flat, flat, ratios=[1.6, 0.9, 4.0, 0.9, 1.0, 0.9, 0.9, 0.9]) is None


def test_later_sharpness_alarm_needs_persistence_and_the_edge_of_stability_is_no_alarm():
    flat = np.ones(400)
    a = _run(_forecaster(), flat, flat, ratios=[0.5, 3.5, 4.0, 1, 1, 1, 1, 1])
    assert a.signal == "sharpness" and a.value == 4.0  # the second check in a row at >= 3
    # hovering just above the threshold (edge of stability) while the loss rises: no alarm
    rising = np.linspace(1, 2, 400)
    assert _run(_forecaster(), rising, flat, ratios=[0.9, 1.5, 1.6, 1.7, 1.8, 1.2, 1.2, 1.2]) is None


def test_weight_growth_alarm_on_steady_exponential_growth_only():
    steps = np.arange(1000)
    a = _run(_forecaster((), 2000), np.ones(1000), np.exp(5e-3 * steps))
    assert a.signal == "weight_growth" and a.step <= 300
    settling = np.exp(2.0 * (1 - np.exp(-steps / 80)))  # x7.4, then flat
    assert _run(_forecaster(), np.ones(1000), settling) is None


def test_unbounded_loss_alarm_only_for_an_unbounded_formulation_running_away():
    rng = np.random.default_rng(0)
    steps = np.arange(600)
    losses = -0.01 * steps + 0.02 * rng.standard_normal(600)
    growing = np.exp(4e-3 * steps)  # x2.2 at step 200 (under the weight alarm's x3); x3000 by step 2000
    a = _run(_forecaster(["residual"], 2000), losses, growing)
    assert a.signal == "unbounded_loss" and a.value < 0 and a.step <= 200
    # without an unbounded term, or with a loss that converged, only the weights speak, once x3
    assert _run(_forecaster([], 2000), losses, growing).signal == "weight_growth"
    converged = np.exp(-steps / 30) + 0.02 * rng.standard_normal(600)
    assert _run(_forecaster(["residual"], 2000), converged, growing).signal == "weight_growth"
    # a loss that falls while the weights creep (x1.06 by the end of the budget): no alarm
    assert _run(_forecaster(["residual"], 2000), losses, np.exp(3e-5 * steps)) is None


def test_trends_are_added_to_the_diagnostics():
    f = _forecaster(["residual"])
    diag = {}
    f.check(200, diag, _fake(-0.01 * np.arange(400), np.exp(1e-3 * np.arange(400))))
    assert diag["trend/ln_weight_norm"] == pytest.approx(1e-3, rel=1e-6)
    assert diag["trend/loss"] == pytest.approx(-0.01, rel=1e-6)


def test_stop_on_alarm_ends_the_run_only_when_asked():
    from pinnlab.training import train

    base = [
        "model.width=4",
        "training.batch_size=3600",
        "training.steps=40",
        "diagnostics.every=10",
        "optimizer.learning_rate=100",
        "loss.formulation=squared",
        "divergence.stop_early=false",
    ]
    r = train("seed", base)
    assert r.forecast["signal"] == "sharpness" and r.forecast["first_alarm_step"] == 0
    assert r.stopped_by is None
    s = train("seed", base + ["divergence.stop_on_alarm=true"])
    assert s.steps_run == 1 and s.stopped_by.startswith("forecast alarm (sharpness)")


def test_sharpness_works_beside_an_xla_step():
    from pinnlab.training import train

    r = train(
        "poisson2d",
        [
            "training.steps=2",
            "diagnostics.every=1",
            "problem.params.n_residual=64",
            "problem.params.n_boundary=16",
            "model.width=8",
            "training.jit_compile=true",
        ],
    )
    assert r.history["sharpness/top"].notna().all()


def test_verdicts_benchmark_quick_variant(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "verdicts.json"
    subprocess.run(
        [sys.executable, str(root / "benchmarks" / "studies" / "verdicts.py"), "--quick", "--out", str(out)],
        check=True,
        cwd=root,
        capture_output=True,
        timeout=600,
    )
    data = json.loads(out.read_text())
    for key in (
        "n_runs",
        "label_agreement",
        "confusion",
        "forecast_recall",
        "forecast_false_alarm_rate",
        "median_lead_steps",
        "machine",
        "wall_seconds",
        "halves",
        "thresholds_tuned_on_corpus",
    ):
        assert key in data, key
    assert data["n_runs"] == 2 and data["quick"] is True
    blew = next(r for r in data["runs"] if "lr100" in r["name"])
    assert blew["truth_divergent"] and blew["label_divergent"] and blew["truth_alarm_step"] == 0


def test_the_default_first_check_reaches_the_top_eigenvalue_on_a_seed_trial():
    """benchmarks/studies/sharpness_accuracy.py's measurement on one small case: the default cold check
    (Lanczos, tol 0.05) gives the ratio to within the 0.05 × max(ratio, 1) its tolerance allows, Lanczos
    at 8 HVPs no worse than power at 12."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.studies.sharpness_accuracy import measure_case

    case = measure_case("seed", ["model.activation=tanh", "model.width=20"], starts=2)
    assert case["weights"] == 81 and case["reference"] != 0
    for row in case["starts"]:
        check = row["default_check"]
        assert 3 <= check["hvps"] <= 12 and check["ratio_error"] <= 0.05
        assert abs(row["lanczos"][8] - 1) <= abs(row["power"][12] - 1) + 1e-3
