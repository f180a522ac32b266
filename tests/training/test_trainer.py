"""The trainer: determinism, diagnostics, NaN forensics, outcome classes, weighting, optimizers,
the recorder and the two loops, callbacks that stop a run, weights in and out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pinnlab import load_config
from pinnlab.core.outcomes import Outcome
from pinnlab.training import Callback, StopTraining, Trainer, train
from pinnlab.training.divergence import (
    DivergenceMonitor,
    classify_finished,
    growth_rate,
)
from pinnlab.training.loops import FirstOrderLoop, LBFGSLoop
from pinnlab.training.recorder import Recorder

SMALL_POISSON = [
    "problem.params.n_residual=200",
    "problem.params.n_boundary=40",
    "training.steps=30",
    "diagnostics.every=10",
    "training.jit_compile=false",  # XLA compiles for seconds; tiny runs do not pay that back
]


def test_same_config_and_seed_give_identical_history():
    a = train("poisson2d", SMALL_POISSON).history
    b = train("poisson2d", SMALL_POISSON).history
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = train("poisson2d", SMALL_POISSON + ["training.seed=1"]).history
    assert not np.array_equal(a["loss/total"].to_numpy(), c["loss/total"].to_numpy())


def test_history_has_per_step_and_periodic_diagnostics():
    r = train("poisson2d", SMALL_POISSON)
    h = r.history
    assert r.outcome == "stable" and r.steps_run == 30 and len(h) == 30
    every_step = ["loss/total", "loss/residual", "loss/boundary", "grad_norm/total", "weight_norm/total"]
    assert h[every_step].notna().all().all()
    periodic = [
        "grad_norm/residual",
        "grad_norm/boundary",
        "weight_norm/dense_1/kernel",
        "weight_norm/dense_4/bias",
        "grad_norm/dense_2/kernel",
        "grad_norm/dense_2/bias",
        "update_ratio/dense_1/kernel",
        "deriv/u_xx",
        "deriv/u_yy",
        "error/rel_l2",
    ]
    for col in periodic:
        assert col in h.columns, col
        assert h[col].notna().to_numpy().nonzero()[0].tolist() == [0, 10, 20], col
    # per-layer norms add up to the global one
    layers = [c for c in h.columns if c.startswith("weight_norm/dense_")]
    total = np.sqrt((h.loc[0, layers] ** 2).sum())
    assert total == pytest.approx(h.loc[0, "weight_norm/total"], rel=1e-5)
    # per-term gradient norms of a two-term loss bracket the total by the triangle inequality
    g = h.loc[10]
    assert g["grad_norm/total"] <= g["grad_norm/residual"] + g["grad_norm/boundary"] + 1e-6
    assert r.rel_l2_error is not None and r.heldout_ratio is not None
    assert [w for w in r.warnings if not w.startswith("not converged")] == []  # tanh, squared: no warning


def test_overflowing_step_is_never_applied_and_named():
    """The largest allowed learning rate on the largest allowed loss weight makes the first update
    overflow: the run stops at step 0 in its initial (finite) state and names what overflowed (every
    updated weight is finite, their norm is not)."""
    r = train("seed", ["optimizer.learning_rate=1e19", "loss.weights.residual=1e19", "training.epochs=1"])
    assert r.outcome == "nan"
    assert r.nan_onset_step == 0 and r.steps_run == 1
    assert r.first_nonfinite == "weight_norm/updated"
    assert math.isfinite(r.weight_norm_final)
    assert r.weight_norm_final == pytest.approx(r.weight_norm_initial, rel=1e-6)
    assert r.summary()["final_loss"] is not None


def test_nan_forensics_names_the_residual():
    r = train({"problem": {"name": "tests.user_problem:Blows"}, "training": {"steps": 5}})
    assert r.outcome == "nan" and r.nan_onset_step == 0
    assert r.first_nonfinite == "residual/residual"
    assert "residual/residual" in r.reason


def test_unbounded_loss_is_detected_and_stops_early():
    r = train("seed", ["divergence.loss_floor=-1.0", "training.epochs=10"])
    assert r.outcome == "unbounded"
    assert r.steps_run < r.steps_budget
    assert r.final_loss < -1.0
    assert any("raw" in w for w in r.warnings)


def test_relu_second_derivative_warning():
    r = train("seed", ["training.steps=3"])
    assert any("relu" in w and "u_yy" in w for w in r.warnings)
    r = train("seed", ["training.steps=3", "model.output_activation=linear"])
    assert any("zero almost everywhere" in w for w in r.warnings)


def test_epochs_budget_and_minibatches():
    t = Trainer(load_config("seed", ["training.epochs=2"]))
    assert t.steps_per_epoch == 360 and t.steps_budget == 720
    batch = next(t.batches())
    assert tuple(batch["residual"].shape) == (10, 2)


def test_l2_penalty_is_a_loss_term():
    r = train("poisson2d", SMALL_POISSON + ["regularization.l2=1e-3"])
    h = r.history
    assert {"loss/l2", "grad_norm/l2"} <= set(h.columns)
    lam = r.config.loss.weights.get("boundary", 1.0)  # the poisson2d preset weighs the boundary
    total = h["loss/residual"] + lam * h["loss/boundary"] + h["loss/l2"]
    np.testing.assert_allclose(h["loss/total"], total, rtol=1e-5)


def test_gradient_clipping_bounds_the_update():
    cfg = ["optimizer.name=sgd", "optimizer.learning_rate=1.0", "regularization.clip_norm=1e-3", "training.steps=1"]
    t = Trainer(load_config("poisson2d", SMALL_POISSON[:2] + cfg))
    before = [v.numpy().copy() for v in t.vars]
    r = t.fit()
    assert r.history.loc[0, "grad_norm/total"] > 1e-2  # clipping was active
    moved = math.sqrt(sum(float(((v.numpy() - b) ** 2).sum()) for v, b in zip(t.vars, before)))
    assert moved == pytest.approx(1e-3, rel=1e-3)


def test_max_norm_constraint_holds():
    t = Trainer(
        load_config("poisson2d", SMALL_POISSON + ["regularization.max_norm=0.5", "optimizer.learning_rate=0.1"])
    )
    t.fit()
    for k in t.kernels:
        assert np.linalg.norm(k.numpy(), axis=0).max() <= 0.5 + 1e-5


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "rmsprop"])
def test_first_order_optimizers_reduce_the_loss(opt):
    lr = {"sgd": 1e-3, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}[opt]
    r = train("poisson2d", SMALL_POISSON + [f"optimizer.name={opt}", f"optimizer.learning_rate={lr}"])
    loss = r.history["loss/total"].to_numpy()
    assert r.outcome == "stable" and loss[-1] < loss[0]


def test_lbfgs_one_row_per_iteration_and_converges():
    r = train("poisson2d", SMALL_POISSON[:2] + ["optimizer.name=lbfgs", "training.steps=200", "diagnostics.every=50"])
    h = r.history
    assert r.outcome == "stable"
    assert 50 <= r.steps_run <= 200 and len(h) == r.steps_run
    assert h["loss/total"].iloc[-1] < 1e-3 * h["loss/total"].iloc[0]
    assert r.rel_l2_error < 0.2
    assert h["grad_norm/residual"].notna().sum() >= 1


def test_exponential_schedule_decays():
    t = Trainer(
        load_config(
            "poisson2d",
            SMALL_POISSON
            + [
                "optimizer.schedule.name=exponential",
                "optimizer.schedule.decay_steps=10",
                "optimizer.schedule.decay_rate=0.5",
            ],
        )
    )
    t.fit()
    assert float(t.optimizer.learning_rate) == pytest.approx(1e-3 * 0.5**3, rel=1e-5)


# --------------------------------------------------------------------------- weighting


def test_grad_norm_fixed_point_is_finite():
    """λ ← αλ + (1−α)·max|∇L_r| / (λ·mean|∇L_b|) converges to sqrt(max/mean): it cannot run away,
    unlike the variant with the unweighted term in the denominator, which grows without bound
    whenever max|∇L_r| > mean|∇L_b| stays true."""
    ratio, alpha = 400.0, 0.9
    lam = unweighted = 1.0
    for _ in range(500):
        lam = alpha * lam + (1 - alpha) * ratio / lam
        unweighted = alpha * unweighted + (1 - alpha) * ratio * unweighted  # grads of λ·L_b scale with λ
    assert lam == pytest.approx(math.sqrt(ratio), rel=1e-6)
    assert unweighted > 1e30


def test_grad_norm_weighting_settles_on_helmholtz():
    r = train(
        {"problem": {"name": "helmholtz2d"}},
        [
            "loss.weighting.scheme=grad_norm",
            "training.resample=true",
            "model.standardize=true",
            "training.steps=300",
            "diagnostics.every=100",
        ],
    )
    lam = r.history["lambda/boundary"].to_numpy()
    assert not r.outcome.divergent  # 300 steps do not solve it (stalled or stable): the weights stay bounded
    assert np.isfinite(lam).all() and lam[0] > 1.0  # first update happens before step 0
    assert lam.max() < 1e3  # measured: settles in the tens; the unweighted form reaches ~1e9
    assert abs(np.log(lam[-1] / lam[-50])) < 0.5  # no longer running


# --------------------------------------------------------------------------- outcome rules


def test_growth_rate_is_the_log_slope():
    steps = np.arange(100)
    assert growth_rate(steps, 3.0 * np.exp(0.01 * steps)) == pytest.approx(0.01)
    assert math.isnan(growth_rate(steps[:1], np.ones(1)))


def test_monitor_rules():
    cfg = load_config("poisson2d").divergence
    norms = np.full(5000, np.nan)
    m = DivergenceMonitor(cfg, norms, 100)
    assert m.check(0, 1.0, 2.0) is None
    assert m.check(1, -2e6, 2.0).outcome == "unbounded"
    assert m.check(2, 1.0, 2.0 * cfg.max_weight_ratio).outcome == "blowup"
    steps = np.arange(2001)
    norms[:2001] = 2.0 * np.exp(0.003 * steps)
    v = m.check(2000, 1.0, float(norms[2000]))
    assert v.outcome == "blowup" and "exponentially" in v.reason


def test_silent_failure_needs_low_loss_and_a_wrong_answer():
    cfg = load_config("poisson2d").divergence
    kw = dict(initial_loss=1.0, final_loss=1e-5)  # as on convection1d at beta = 40
    assert classify_finished(cfg, rel_l2_error=1.2, heldout_ratio=1.0, **kw)[0] == "silent_failure"
    assert classify_finished(cfg, rel_l2_error=None, heldout_ratio=1e7, **kw)[0] == "silent_failure"
    assert classify_finished(cfg, rel_l2_error=0.01, heldout_ratio=2.0, **kw)[0] == "stable"
    # wrong, the loss at 0.1x its start: still training (stable, with a warning); at 0.5x: stalled
    outcome, _, warnings = classify_finished(cfg, initial_loss=1.0, final_loss=0.1, rel_l2_error=1.2, heldout_ratio=1.0)
    assert outcome == "stable" and "not converged" in warnings[0]
    outcome, reason, _ = classify_finished(cfg, initial_loss=1.0, final_loss=0.5, rel_l2_error=1.2, heldout_ratio=1.0)
    assert outcome == "stalled" and "not training" in reason


# --------------------------------------------------------------------------- weights in and out


def test_term_gradients_add_up_to_the_total_gradient():
    import tensorflow as tf

    cfg = load_config(
        "helmholtz2d", ["model.width=8", "training.steps=3", "loss.weights.boundary=3.0", "regularization.l2=1e-3"]
    )
    t = Trainer(cfg)
    per_term = t.term_gradients()
    assert set(per_term) == {"residual", "boundary", "l2"}
    points = t._tensors(t.train_points)
    with tf.GradientTape() as tape:
        losses, _, _ = t._losses(points)
        total = t._total(losses)
    expected = tape.gradient(total, t.vars)
    for name, g in zip(t.var_names, expected):
        summed = sum(per_term[term][name] for term in per_term)
        np.testing.assert_allclose(summed, g.numpy(), rtol=2e-4, atol=1e-6)


def test_set_weights_warm_starts_and_checks_shapes():
    cfg = load_config("seed-answer", ["training.steps=3"])
    a, b = Trainer(cfg), Trainer(load_config("seed-answer", ["training.steps=3", "training.seed=5"]))
    b.set_weights(a.get_weights())
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match="dense_1/kernel must have shape"):
        b.set_weights([w.T for w in a.get_weights()])


# --------------------------------------------------------------------------- the recorder


class _Log(Callback):
    """Records the order of callback calls; raises StopTraining at ``stop`` from ``hook``."""

    def __init__(self, stop=None, hook="on_step"):
        self.calls, self.stop, self.hook = [], stop, hook

    def on_train_begin(self, trainer):
        self.calls.append(("begin", None))

    def on_diagnostics(self, step, metrics):
        self.calls.append(("diagnostics", step))
        if self.hook == "on_diagnostics" and step == self.stop:
            raise StopTraining(f"stopped at {step}")

    def on_step(self, step, metrics):
        self.calls.append(("step", step))
        assert set(metrics) == set(self.names)
        if self.hook == "on_step" and step == self.stop:
            raise StopTraining(f"stopped at {step}")

    def on_train_end(self, result):
        self.calls.append(("end", result.steps_run))


def _recorder(*callbacks, overrides=(), budget=10):
    t = Trainer(load_config("poisson2d", SMALL_POISSON + list(overrides)), callbacks)
    for cb in callbacks:
        cb.names = t.step_names
    return t, Recorder(t, budget)


def _vec(t, loss=1.0, wnorm=2.0):
    v = np.ones(len(t.step_names))
    v[0], v[t.step_names.index("weight_norm/total")] = loss, wnorm
    return v


def test_recorder_rows_diagnostics_and_callbacks():
    log = _Log()
    t, rec = _recorder(log)
    rec.begin()
    for step in range(4):
        assert rec.record(step, _vec(t, loss=1.0 / (step + 1)), {"x/y": float(step)} if step % 2 == 0 else None)
    r = rec.finish()
    assert r.outcome == Outcome.STABLE and r.steps_run == 4 and r.steps_budget == 10
    assert r.history["loss/total"].tolist() == [1.0, 0.5, 1 / 3, 0.25]
    assert r.history["x/y"].isna().tolist() == [False, True, False, True]
    assert log.calls == [
        ("begin", None),
        ("diagnostics", 0),
        ("step", 0),
        ("step", 1),
        ("diagnostics", 2),
        ("step", 2),
        ("step", 3),
        ("end", 4),
    ]
    assert rec.norms[:4].tolist() == [2.0] * 4 and np.isnan(rec.norms[4:]).all()


def test_recorder_keeps_the_first_verdict_and_stops_early_only_when_asked():
    floor = load_config("poisson2d").divergence.loss_floor
    t, rec = _recorder()
    assert not rec.record(0, _vec(t, loss=2 * floor))
    assert rec.verdict.outcome == Outcome.UNBOUNDED and rec.steps_run == 1
    t, rec = _recorder(overrides=["divergence.stop_early=false"])
    assert rec.record(0, _vec(t, loss=2 * floor))
    assert rec.record(1, _vec(t, wnorm=1e9))  # a later rule does not replace the first
    r = rec.finish()
    assert r.outcome == Outcome.UNBOUNDED and r.divergence_step == 0 and r.steps_run == 2


def test_recorder_nonfinite_bookkeeping():
    log = _Log()
    t, rec = _recorder(log)
    rec.begin()
    rec.record(0, _vec(t))
    bad = _vec(t, loss=float("nan"))
    rec.nonfinite(1, "residual/residual", bad, {"x/y": 3.0})
    r = rec.finish()
    assert r.outcome == Outcome.NAN and r.nan_onset_step == 1 and r.steps_run == 2
    assert r.first_nonfinite == "residual/residual"
    assert r.reason == "first non-finite value at step 1: residual/residual"
    assert np.isnan(r.history.loc[1, "loss/total"]) and r.history.loc[1, "x/y"] == 3.0
    assert ("step", 1) not in log.calls  # the non-finite step is not reported as metrics


@pytest.mark.parametrize("hook", ["on_step", "on_diagnostics"])
def test_recorder_stop_training_ends_at_the_step_it_was_raised(hook):
    log = _Log(stop=2, hook=hook)
    t, rec = _recorder(log)
    rec.begin()
    assert rec.record(0, _vec(t), {"x/y": 0.0}) and rec.record(1, _vec(t))
    assert not rec.record(2, _vec(t), {"x/y": 2.0})
    r = rec.finish()
    assert r.steps_run == 3 and r.stopped_by == "stopped at 2" and not r.outcome.divergent


# --------------------------------------------------------------------------- the loops


def test_first_order_loop_feeds_the_recorder_every_step():
    log = _Log()
    t = Trainer(load_config("poisson2d", SMALL_POISSON), [log])
    log.names = t.step_names
    loop = FirstOrderLoop(t)
    rec = Recorder(t, loop.budget, unit=loop.unit)
    loop.run([rec])
    r = rec.finish()
    assert r.steps_run == 30 and rec.compile_seconds > 0
    assert [s for kind, s in log.calls if kind == "step"] == list(range(30))
    assert [s for kind, s in log.calls if kind == "diagnostics"] == [0, 10, 20]
    assert log.calls[0] == ("begin", None) and log.calls[-1] == ("end", 30)


def test_lbfgs_loop_one_row_per_accepted_iterate_and_weights_left_there():
    log = _Log()
    t = Trainer(load_config("poisson2d", SMALL_POISSON + ["optimizer.name=lbfgs", "training.steps=20"]), [log])
    log.names = t.step_names
    assert t.steps_budget == 20
    loop = LBFGSLoop(t)
    rec = Recorder(t, loop.budget, unit=loop.unit)
    loop.run([rec])
    r = rec.finish()
    assert r.steps_run == 20 and [s for kind, s in log.calls if kind == "step"] == list(range(20))
    assert r.history["loss/total"].iloc[-1] < r.history["loss/total"].iloc[0]
    # the model is left at the last accepted iterate: its weight norm is the last row's
    assert r.weight_norm_final == pytest.approx(r.history["weight_norm/total"].iloc[-1], rel=1e-6)


def test_lbfgs_nan_forensics_names_the_residual():
    r = train(
        {"problem": {"name": "tests.user_problem:Blows"}, "optimizer": {"name": "lbfgs"}, "training": {"steps": 5}}
    )
    assert r.outcome == Outcome.NAN and r.nan_onset_step == 0 and r.steps_run == 1
    assert r.first_nonfinite == "residual/residual"
    assert r.reason == "first non-finite value at iteration 0: residual/residual"


STEPS_50 = SMALL_POISSON[:2] + ["training.steps=50", "diagnostics.every=10", "training.jit_compile=false"]


@pytest.mark.parametrize("hook,stop", [("on_step", 37), ("on_diagnostics", 30)])
@pytest.mark.parametrize("overrides", [STEPS_50, STEPS_50 + ["optimizer.name=lbfgs"]], ids=["adam", "lbfgs"])
def test_stop_training_from_a_callback_keeps_the_history_up_to_its_step(overrides, hook, stop):
    """A callback raising StopTraining at step s ends the run with s + 1 rows, 0..s."""
    log = _Log(stop=stop, hook=hook)
    t = Trainer(load_config("poisson2d", overrides), [log])
    log.names = t.step_names
    r = t.fit()
    assert r.stopped_by == f"stopped at {stop}"
    assert r.steps_run == stop + 1 and r.history.index.tolist() == list(range(stop + 1))
    assert r.history["loss/total"].notna().all()
    assert log.calls[-1] == ("end", stop + 1)
    if hook == "on_diagnostics":
        assert np.isfinite(r.history.loc[stop, "grad_norm/residual"])  # its diagnostics row is kept
        assert ("step", stop) not in log.calls  # the run ended before on_step of that step


# --------------------------------------------------------------------------- diverging


def _trend_cfg(*overrides):
    return load_config("seed", list(overrides)).divergence


def test_diverging_fires_on_steady_weight_growth_and_not_on_settling_growth():
    from pinnlab.training.divergence import classify_trend

    steps = np.arange(400)
    steady = 2.0 * np.exp(2e-3 * steps)  # x2.2 so far; x3000 by 10x the budget
    settling = 2.0 * np.exp(3.0 * (1 - np.exp(-steps / 100)))  # x20, but the rate decays
    flat_loss = np.ones(400)
    v = classify_trend(_trend_cfg(), norms=steady, losses=flat_loss, end=399, unbounded_terms=[])
    assert v is not None and v.outcome == Outcome.DIVERGING and "d ln||W||/dstep" in v.reason
    assert classify_trend(_trend_cfg(), norms=settling, losses=flat_loss, end=399, unbounded_terms=[]) is None
    # the projection is to horizon x the budget: at horizon 1 the same growth is not diverging
    assert (
        classify_trend(_trend_cfg("divergence.horizon=1"), norms=steady, losses=flat_loss, end=399, unbounded_terms=[])
        is None
    )


def test_diverging_on_an_unbounded_loss_counts_the_windows_mean_weight_rate():
    """A loss unbounded below that still falls: the weights' mean rate over the window is carried
    forward even when the later half dips (a wobble, not convergence); a slow fall is not diverging."""
    from pinnlab.training.divergence import classify_trend

    rng = np.random.default_rng(0)
    steps = np.arange(400)
    # ln-rate 3e-3 then 2.2e-3 over the last 200 steps (later / earlier 0.73 < trend_steady): x2.3 now,
    # x~2e3 at 10x the budget at the mean rate
    rate = np.where(steps < 300, 3e-3, 2.2e-3)
    wobbling = 2.0 * np.exp(np.cumsum(rate))
    falling = -0.02 * steps + 0.05 * rng.standard_normal(400)
    v = classify_trend(_trend_cfg(), norms=wobbling, losses=falling, end=399, unbounded_terms=["residual"])
    assert v is not None and v.outcome == Outcome.DIVERGING and "over the window" in v.reason
    assert "unbounded below (residual)" in v.reason
    # the same weights without an unbounded loss: the later rate decides, and it dipped
    assert classify_trend(_trend_cfg(), norms=wobbling, losses=falling, end=399, unbounded_terms=[]) is None
    # a loss that falls while the weights barely move (x1.2 at 10x the budget): finite there, not diverging
    slow = 2.0 * np.exp(5e-5 * steps)
    assert classify_trend(_trend_cfg(), norms=slow, losses=falling, end=399, unbounded_terms=["residual"]) is None
    converging = np.exp(-steps / 50) + 0.05 * rng.standard_normal(400)
    assert (
        classify_trend(_trend_cfg(), norms=wobbling, losses=converging, end=399, unbounded_terms=["residual"]) is None
    )
    noise = 0.05 * rng.standard_normal(400)
    assert classify_trend(_trend_cfg(), norms=wobbling, losses=noise, end=399, unbounded_terms=["residual"]) is None


def test_diverging_projects_a_bounded_step_optimizers_norm_linearly():
    """Adam-type steps move each weight by at most a few learning rates: ln-rate 3e-3 at x2.5 is
    x~9e3 at 10x the budget exponentially, but x~30 linearly (a Helmholtz Adam run ended at x3.3)."""
    from pinnlab.training.divergence import classify_trend

    steps = np.arange(300)
    norms = 2.0 * np.exp(3e-3 * steps)
    flat = np.ones(300)
    assert classify_trend(_trend_cfg(), norms=norms, losses=flat, end=299, unbounded_terms=[]) is not None
    assert (
        classify_trend(_trend_cfg(), norms=norms, losses=flat, end=299, unbounded_terms=[], bounded_step=True) is None
    )
    fast = 2.0 * (1 + 0.5 * steps)  # linear, x150 already: x1500 at 10x the budget
    v = classify_trend(_trend_cfg(), norms=fast, losses=flat, end=299, unbounded_terms=[], bounded_step=True)
    assert v is not None and "linearly" in v.reason


def test_diverging_counts_as_divergent():
    assert Outcome.DIVERGING.divergent and Outcome.DIVERGING.judged
    assert Outcome.DIVERGING.colour and Outcome.DIVERGING.meaning


def test_a_raw_loss_still_falling_at_the_end_is_diverging_not_stable():
    seed_tiny = [
        "model.width=8",
        "training.batch_size=3600",
        "training.steps=80",
        "diagnostics.every=40",
        "diagnostics.sharpness=false",
    ]
    r = train("seed", seed_tiny + ["model.activation=tanh", "optimizer.learning_rate=0.1"])
    assert r.outcome == Outcome.DIVERGING and r.diverged, (r.outcome, r.reason)
    assert "still" in r.reason  # the weight trend or the unbounded loss, whichever fires first
    ok = train("seed", seed_tiny + ["loss.formulation=squared", "model.activation=tanh"])
    assert ok.outcome == Outcome.STABLE, ok.reason
