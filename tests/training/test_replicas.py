"""Stacked seed replicates: replicate r equals a separate run with seed ``seed + r``.

Each case trains a tiny config once with ``training.replicates: k`` and k times as separate runs,
and compares every replicate's history (every column, sharpness included), outcome, onsets and
final numbers.  The stacked step uses batched matmuls where a single run uses plain ones, so values
agree to float tolerance, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from pinnlab.backend import import_tensorflow
from pinnlab.config import load_config
from pinnlab.core.errors import ConfigError

import_tensorflow()

from pinnlab.config.replicates import replicate_config  # noqa: E402
from pinnlab.numerics.models import build_mlp  # noqa: E402
from pinnlab.training import build_trainer  # noqa: E402
from pinnlab.training.replicas import StackedMLP  # noqa: E402
from pinnlab.training.trainer import Trainer  # noqa: E402

RTOL = 2e-4


def _check_equal(cfg, rtol=RTOL, atol=1e-6):
    combined = Trainer(cfg).fit()
    k = cfg.training.replicates
    assert len(combined.replicates) == k == len(combined.replicate_results)
    for r, res in enumerate(combined.replicate_results):
        single = Trainer(replicate_config(cfg, r)).fit()
        assert res.outcome == single.outcome, (r, res.reason, single.reason)
        assert res.nan_onset_step == single.nan_onset_step
        assert res.first_nonfinite == single.first_nonfinite
        assert res.divergence_step == single.divergence_step
        assert res.steps_run == single.steps_run
        assert list(res.history.columns) == list(single.history.columns)
        np.testing.assert_allclose(
            res.history.to_numpy(),
            single.history.to_numpy(),
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            err_msg=f"replicate {r}",
        )
        for name in ("final_loss", "rel_l2_error", "heldout_residual", "weight_norm_final"):
            a, b = getattr(res, name), getattr(single, name)
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=10 * rtol, err_msg=name)
    return combined


def test_initial_weights_are_a_separate_runs():
    m = StackedMLP(input_dim=2, width=5, depth=2, activation="tanh", initializer="glorot_uniform", seeds=[3, 4])
    for r, seed in enumerate([3, 4]):
        keras_model = build_mlp(input_dim=2, width=5, depth=2, activation="tanh", seed=seed)
        for v, w in zip(m.variables, keras_model.trainable_variables):
            np.testing.assert_array_equal(v.numpy()[r], w.numpy())


def test_seed_fixed_minibatches_clip_and_l2():
    cfg = load_config(
        "seed-fixed",
        [
            "model.width=8",
            "training.steps=30",
            "training.replicates=3",
            "training.seed=5",
            "diagnostics.every=10",
            "regularization.clip_norm=0.5",
            "regularization.l2=1e-3",
            "divergence.heldout_points=64",
        ],
    )
    combined = _check_equal(cfg)
    assert combined.divergence_rate == 0.0
    assert len({r["final_loss"] for r in combined.replicates}) == 3  # distinct seeds, distinct runs


def test_poisson_adam_max_norm():
    cfg = load_config(
        "poisson2d",
        [
            "model.width=6",
            "model.depth=2",
            "training.steps=25",
            "training.replicates=2",
            "training.jit_compile=false",
            "problem.params.n_residual=64",
            "problem.params.n_boundary=16",
            "diagnostics.every=8",
            "regularization.max_norm=2.0",
            "divergence.heldout_points=64",
        ],
    )
    _check_equal(cfg)


def test_helmholtz_edges_split_per_replicate():
    cfg = load_config(
        "helmholtz2d",
        [
            "model.width=6",
            "model.depth=1",
            "training.steps=12",
            "training.replicates=2",
            "problem.params.n_residual=32",
            "problem.params.n_boundary_per_edge=8",
            "diagnostics.every=5",
            "divergence.heldout_points=32",
            "training.jit_compile=false",
        ],
    )
    _check_equal(cfg)


def test_one_replicate_nan_the_others_go_on():
    cfg = load_config(
        "seed-fixed",
        [
            "problem.name=tests.replica_problems:HalfSeedsNaN",
            "problem.params={}",
            "model.width=6",
            "training.steps=15",
            "training.batch_size=null",
            "training.seed=1",
            "training.replicates=3",
            "diagnostics.every=5",
            "divergence.heldout_points=32",
        ],
    )
    combined = _check_equal(cfg)
    rows = combined.replicates
    assert [r["seed"] for r in rows] == [1, 2, 3]
    assert rows[0]["outcome"] == "nan" and rows[0]["nan_onset_step"] == 0
    assert rows[0]["first_nonfinite"] == "residual/residual"
    assert [r["steps_run"] for r in rows[1:]] == [15, 15]
    assert combined.divergence_rate == pytest.approx(1 / 3)
    assert combined.nan_onset_step == 0


def test_raw_loss_replicates_diverge_at_their_own_steps():
    cfg = load_config(
        "seed",
        [
            "model.width=10",
            "training.steps=80",
            "training.batch_size=null",
            "training.replicates=3",
            "optimizer.learning_rate=0.3",
            "diagnostics.every=20",
            "divergence.loss_floor=-50",
        ],
    )
    combined = _check_equal(cfg, rtol=1e-3, atol=1e-5)
    assert combined.divergence_rate > 0


def test_one_trainer_class_for_any_number_of_replicates():
    cfg = load_config("seed-fixed", ["model.width=4", "training.steps=2"])
    assert type(build_trainer(cfg)) is Trainer
    two = build_trainer(cfg.model_copy(update={"training": cfg.training.model_copy(update={"replicates": 2})}))
    assert type(two) is Trainer and two.k == 2


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["optimizer.name=lbfgs"], "lbfgs"),
        (["problem.params.literal=true"], "reduces over the points"),
    ],
)
def test_unsupported_combinations_are_one_line_errors(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_config("seed", ["training.replicates=2", *overrides])
    text = str(err.value)
    assert "training.replicates" in text and field in text and "\n" not in text


@pytest.mark.parametrize("seed, rate", [(1, 0.5), (1, 0.75), (5, 0.5)])
def test_a_run_and_a_sweep_trial_judge_replicates_by_one_rule(seed, rate):
    """Stacked replicates (`pinnlab run --set training.replicates=k`) and a sweep trial's seeds
    (pinnlab.config.replicates.aggregate) give the same outcome and verdict for the same seeds, at the
    threshold the config sets."""
    from pinnlab.config.replicates import aggregate
    from pinnlab.core.outcomes import Outcome

    cfg = load_config(
        "seed-fixed",
        [
            "problem.name=tests.replica_problems:HalfSeedsNaN",
            "problem.params={}",
            "model.width=6",
            "training.steps=10",
            "training.batch_size=null",
            f"training.seed={seed}",
            "training.replicates=4",
            "diagnostics.every=5",
            "divergence.heldout_points=32",
            f"divergence.replicate_rate={rate}",
        ],
    )
    combined = build_trainer(cfg).fit()
    rows = combined.replicates
    outcomes = [Outcome(r["outcome"]) for r in rows]
    trial = aggregate(rows, [None] * len(rows), [r["seed"] for r in rows], replicate_rate=rate)
    assert combined.outcome == trial["outcome"]
    assert combined.divergence_rate == trial["attrs"]["divergence_rate"] == sum(o.divergent for o in outcomes) / 4
    assert combined.outcome.divergent == trial["divergent"] == (combined.divergence_rate >= rate)


def test_sharpness_and_grad_norm_weights_per_replicate():
    """Every diagnostic is per replicate: Lanczos on the block-diagonal stacked Hessian (Adam's
    preconditioned operator) and grad_norm's λ give each replicate its separate run's values."""
    cfg = load_config(
        "poisson2d",
        [
            "model.width=6",
            "model.depth=1",
            "training.steps=11",
            "training.replicates=3",
            "training.jit_compile=false",
            "problem.params.n_residual=48",
            "problem.params.n_boundary=12",
            "diagnostics.every=5",
            "diagnostics.sharpness=true",
            "loss.weighting.scheme=grad_norm",
            "loss.weighting.every=3",
            "divergence.heldout_points=32",
        ],
    )
    combined = _check_equal(cfg, rtol=1e-3, atol=1e-5)
    for res in combined.replicate_results:
        h = res.history
        assert h["sharpness/top"].notna().sum() == 3 and h["adam/g2_over_v"].notna().sum() == 2
        assert h["lambda/boundary"].nunique() > 1  # the weights moved, each replicate its own way
    lams = [res.history["lambda/boundary"].iloc[-1] for res in combined.replicate_results]
    assert len(set(lams)) == 3


@pytest.mark.parametrize(
    "base, overrides, per_trial",
    [
        (
            "seed-fixed",
            [
                "model.width=6",
                "training.steps=12",
                "diagnostics.every=5",
                "divergence.heldout_points=32",
                "regularization.l2=1e-3",
                "regularization.clip_norm=1.0",
                "diagnostics.sharpness=true",
            ],
            [
                {
                    "training.seed": 3,
                    "optimizer.learning_rate": 0.01,
                    "regularization.l2": 1e-3,
                    "regularization.clip_norm": 0.5,
                },
                {
                    "training.seed": 7,
                    "optimizer.learning_rate": 0.003,
                    "regularization.l2": 1e-4,
                    "regularization.clip_norm": 2.0,
                },
                {
                    "training.seed": 3,
                    "optimizer.learning_rate": 0.03,
                    "regularization.l2": 5e-3,
                    "regularization.clip_norm": 1.0,
                },
            ],
        ),
        (
            "poisson2d",
            [
                "model.width=6",
                "model.depth=1",
                "training.steps=12",
                "training.jit_compile=false",
                "problem.params.n_residual=48",
                "problem.params.n_boundary=12",
                "diagnostics.every=5",
                "diagnostics.sharpness=true",
                "regularization.max_norm=3.0",
                "divergence.heldout_points=32",
            ],
            [
                {"training.seed": 1, "optimizer.learning_rate": 0.001, "loss.weights": {"boundary": 10.0}},
                {"training.seed": 2, "optimizer.learning_rate": 0.01, "regularization.max_norm": 1.5},
                {"training.seed": 1, "optimizer.learning_rate": 0.005, "loss.weights": {"boundary": 0.5}},
            ],
        ),
    ],
)
def test_replicates_with_their_own_hyperparameters_equal_separate_runs(base, overrides, per_trial):
    """A batch of trials as one stacked training (a sweep's ``batch``): each replicate its own
    seed, learning rate, penalty, clipping, max-norm and loss weights, its result its own run's."""
    from pinnlab.config import apply_overrides, validate_config
    from pinnlab.config.replicates import group_key

    cfgs = [
        validate_config(apply_overrides(load_config(base, overrides).to_dict(), list(p.items()))) for p in per_trial
    ]
    assert len({group_key(c) for c in cfgs}) == 1
    combined = Trainer(
        cfgs[0].model_copy(update={"training": cfgs[0].training.model_copy(update={"replicates": 3})}),
        replica_configs=cfgs,
    ).fit()
    for cfg, res in zip(cfgs, combined.replicate_results):
        single = Trainer(cfg).fit()
        assert res.config is cfg and res.outcome == single.outcome and res.steps_run == single.steps_run
        assert list(res.history.columns) == list(single.history.columns)
        np.testing.assert_allclose(
            res.history.to_numpy(), single.history.to_numpy(), rtol=2e-3, atol=1e-5, equal_nan=True
        )


def test_a_replicates_own_callback_stops_only_it_a_run_callback_stops_all():
    """A batched trial's pruner is its replicate's own callback: its StopTraining ends that replicate
    alone; a callback of the whole run (a signal handler) ends every replicate at that step."""
    from pinnlab.training import Callback, StopTraining

    class StopAt(Callback):
        def __init__(self, step):
            self.step = step

        def on_step(self, step, metrics):
            if step == self.step:
                raise StopTraining(f"stopped at {step}")

    cfg = load_config(
        "seed-fixed",
        [
            "model.width=4",
            "training.steps=20",
            "training.replicates=3",
            "diagnostics.every=10",
            "divergence.heldout_points=32",
        ],
    )
    t = Trainer(cfg, replica_callbacks=[[], [StopAt(5)], []])
    rows = [r.steps_run for r in t.fit().replicate_results]
    assert rows == [20, 6, 20]
    results = Trainer(cfg, [StopAt(7)]).fit().replicate_results
    assert [r.steps_run for r in results] == [8, 8, 8]
    assert {r.stopped_by for r in results} == {"stopped at 7"}


@pytest.mark.parametrize(
    "problem, overrides",
    [
        # unstandardised: with symmetric standardised inputs the first biases' gradients cancel, and
        # those biases (and their update ratios) are rounding noise of 1e-18 that no two runs share
        ("poisson1d", ["problem.params.n_residual=24", "problem.params.n_boundary=4", "model.standardize=false"]),
        ("helmholtz2d", ["problem.params.n_residual=16", "problem.params.n_boundary_per_edge=4"]),  # four edge parts
    ],
)
def test_ntk_weights_and_traces_per_replicate(problem, overrides):
    """NTK weighting on stacked replicates: each replicate's traces (exact, per point) and λ are its
    separate run's, on a problem with one boundary set and on one whose boundary has four parts."""
    cfg = load_config(
        problem,
        # the presets' optimizers: SGD for poisson1d
        [
            "model.width=6",
            "model.depth=1",
            "training.steps=6",
            "training.replicates=2",
            "training.jit_compile=false",
            "diagnostics.every=5",
            "diagnostics.ntk_trace=true",
            "diagnostics.sharpness=false",
            "loss.weighting.scheme=ntk",
            "loss.weighting.every=5",
            "divergence.heldout_points=32",
            *overrides,
        ],
    )
    combined = _check_equal(cfg, rtol=1e-3, atol=1e-5)
    for res in combined.replicate_results:
        traces = [c for c in res.history.columns if c.startswith("ntk_trace/")]
        assert traces and res.history[traces[0]].notna().sum() == 2
        assert any(c.startswith("lambda/") for c in res.history.columns)
