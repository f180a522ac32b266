"""Causal weighting (``loss.weighting.scheme: causal``, pinnlab.training.causal): the weighted loss
against its formula, the weights outside the gradient, per replicate, and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pinnlab.config import load_config
from pinnlab.core.errors import ConfigError
from pinnlab.training.causal import causal_loss


def _points(rng, n=400):
    t = rng.random(n)
    r = np.sin(3 * t) + 0.1 * rng.standard_normal(n)
    return t, r


def _reference(t, r, chunks, eps):
    idx = np.minimum((t * chunks).astype(int), chunks - 1)
    L = np.array([np.mean(r[idx == i] ** 2) if np.any(idx == i) else 0.0 for i in range(chunks)])
    w = np.exp(-eps * np.concatenate([[0.0], np.cumsum(L)[:-1]]))
    return float(np.mean(w * L)), float(w.min())


@pytest.mark.parametrize("eps", [0.5, 20.0])
def test_the_loss_is_the_formula(eps):
    t, r = _points(np.random.default_rng(0))
    loss, w_min = causal_loss(tf.constant(r[:, None]), tf.constant(t), (0.0, 1.0), 8, eps, 1)
    ref, ref_min = _reference(t, r, 8, eps)
    assert float(loss) == pytest.approx(ref, rel=1e-10) and float(w_min) == pytest.approx(ref_min, rel=1e-10)


def test_the_weights_are_constants_of_the_gradient():
    t, r = _points(np.random.default_rng(1))
    x = tf.Variable(r[:, None])
    with tf.GradientTape() as tape:
        loss, _ = causal_loss(x, tf.constant(t), (0.0, 1.0), 4, 3.0, 1)
    g = tape.gradient(loss, x).numpy()[:, 0]
    idx = np.minimum((t * 4).astype(int), 3)
    L = np.array([np.mean(r[idx == i] ** 2) for i in range(4)])
    w = np.exp(-3.0 * np.concatenate([[0.0], np.cumsum(L)[:-1]]))
    counts = np.bincount(idx, minlength=4)
    expected = w[idx] * 2 * r / (4 * counts[idx])  # d/dr of (1/M) sum_i w_i mean_i r^2, w held fixed
    np.testing.assert_allclose(g, expected, rtol=1e-10)


def test_each_replicate_gets_its_own_weights():
    rng = np.random.default_rng(2)
    (t0, r0), (t1, r1) = _points(rng), _points(rng)
    r1 = 3 * r1  # a replicate with larger residuals: smaller weights
    t = np.stack([t0, t1], axis=1).reshape(-1)  # interleaved rows, as the stacked engine lays them out
    r = np.stack([r0, r1], axis=1).reshape(-1, 1)
    loss, w_min = causal_loss(tf.constant(r), tf.constant(t), (0.0, 1.0), 8, 2.0, 2)
    for j, (tj, rj) in enumerate(((t0, r0), (t1, r1))):
        ref, ref_min = _reference(tj, rj, 8, 2.0)
        assert float(loss[j]) == pytest.approx(ref, rel=1e-10) and float(w_min[j]) == pytest.approx(ref_min, rel=1e-10)


def test_a_run_logs_the_smallest_weight():
    from pinnlab.training import train

    r = train(
        "convection1d",
        [
            "loss.weighting.scheme=causal",
            "loss.weighting.causal_chunks=8",
            "training.steps=20",
            "model.width=8",
            "model.depth=1",
            "problem.params.n_residual=64",
            "diagnostics.sharpness=false",
        ],
    )
    w = r.history["causal/w_min"].to_numpy()
    assert np.isfinite(w).all() and ((w > 0) & (w <= 1)).all()


@pytest.mark.parametrize(
    "preset,over,field",
    [
        ("poisson2d", [], "loss.weighting.scheme"),  # no time coordinate
        ("convection1d", ["loss.formulation=huber"], "loss.formulation"),  # it weights mean squares
    ],
)
def test_what_causal_weighting_needs(preset, over, field):
    with pytest.raises(ConfigError) as e:
        load_config(preset, [*over, "loss.weighting.scheme=causal"])
    assert e.value.field == field


def test_stacked_replicates_weigh_as_separate_runs():
    from pinnlab.training import train

    over = [
        "loss.weighting.scheme=causal",
        "loss.weighting.causal_chunks=8",
        "training.steps=30",
        "model.width=8",
        "model.depth=1",
        "problem.params.n_residual=64",
        "diagnostics.sharpness=false",
    ]
    stacked = train("convection1d", [*over, "training.replicates=2"])
    for seed, r in zip((0, 1), stacked.replicate_results):
        alone = train("convection1d", [*over, f"training.seed={seed}"])
        np.testing.assert_allclose(r.history["causal/w_min"], alone.history["causal/w_min"], rtol=1e-5, atol=1e-6)
        assert r.final_loss == pytest.approx(alone.final_loss, rel=1e-4)


@pytest.mark.slow
def test_the_quick_reproduction_beats_plain_on_every_seed(tmp_path):
    """``pinnlab reproduce causal --quick`` (about 100 s on 2 cores): docs/reproductions.md, `causal`."""
    from pinnlab.reproduce import reproduce

    result = reproduce("causal", quick=True, out=tmp_path / "causal", track=False, progress=False)
    claims = {c.part: c for c in result.claims}
    assert claims["accuracy"].reproduced == "yes" and claims["ordering"].reproduced == "yes"
    runs = result.parts["runs"]
    assert {(r["seed"], r["method"]) for r in runs} == {(0, "plain"), (0, "causal"), (1, "plain"), (1, "causal")}
    assert [f.rsplit("/", 1)[-1] for f in result.figures] == ["causal_error.png"]
