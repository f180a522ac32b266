"""A trainer reused across runs (pinnlab.training.reuse) gives the history a fresh one gives."""

from __future__ import annotations

import pandas as pd
import pytest

from pinnlab.backend import import_tensorflow
from pinnlab.config import load_config

import_tensorflow()

from pinnlab.training.reuse import TrainerCache, reuse_key  # noqa: E402
from pinnlab.training.trainer import Trainer  # noqa: E402


def _fresh(cfg, callbacks):
    return Trainer(cfg, callbacks)


@pytest.mark.parametrize(
    "preset, shared, first, second",
    [
        (
            "seed-fixed",
            ["model.width=8", "diagnostics.every=5", "divergence.heldout_points=64"],
            ["training.steps=20", "optimizer.learning_rate=0.01"],
            ["training.steps=25", "training.seed=3", "optimizer.learning_rate=0.02", "loss.weights.boundary=2.0"],
        ),
        (
            "poisson2d",
            [
                "model.width=6",
                "model.depth=2",
                "training.jit_compile=false",
                "problem.params.n_residual=64",
                "problem.params.n_boundary=16",
                "diagnostics.every=7",
                "divergence.heldout_points=64",
            ],
            ["training.steps=15"],
            ["training.steps=12", "training.seed=9", "optimizer.learning_rate=0.003"],
        ),
    ],
)
def test_reused_trainer_equals_a_fresh_one(preset, shared, first, second):
    """The steps bit for bit; the diagnostics to float rounding (a trainer evaluates its first ones
    eagerly, over its life: a reused one may have spent them, pinnlab.training.compiled)."""
    cache = TrainerCache()
    a = load_config(preset, shared + first)
    b = load_config(preset, shared + second)
    assert reuse_key(a) == reuse_key(b)
    t1 = cache.get(a, [], _fresh)
    t1.fit()
    t2 = cache.get(b, [], _fresh)
    assert t2 is t1 and cache.hits == 1
    reused = t2.fit()
    fresh = Trainer(b).fit()
    steps = list(Trainer(b).step_names)
    pd.testing.assert_frame_equal(reused.history[steps], fresh.history[steps], check_exact=True)
    pd.testing.assert_frame_equal(reused.history, fresh.history, check_exact=False, rtol=1e-4, atol=1e-8)
    assert reused.outcome == fresh.outcome
    assert reused.rel_l2_error == pytest.approx(fresh.rel_l2_error, rel=1e-5)
    assert reused.heldout_residual == pytest.approx(fresh.heldout_residual, rel=1e-5)


@pytest.mark.parametrize(
    "change, same",
    [
        ("model.width=9", False),
        ("model.activation=sin", False),
        ("regularization.l2=0.001", False),
        ("training.batch_size=20", False),
        ("optimizer.learning_rate=0.5", True),
        ("training.seed=4", True),
        ("divergence.max_weight_ratio=50", True),
        ("training.replicates=2", None),
    ],
)
def test_reuse_key(change, same):
    base = load_config("seed-fixed")
    other = load_config("seed-fixed", [change])
    if same is None:
        assert reuse_key(other) is None
    else:
        assert (reuse_key(base) == reuse_key(other)) is same


def test_lr_of_a_schedule_is_part_of_the_key():
    a = load_config("seed-fixed", ["optimizer.schedule.name=exponential", "optimizer.learning_rate=0.01"])
    b = load_config("seed-fixed", ["optimizer.schedule.name=exponential", "optimizer.learning_rate=0.02"])
    assert reuse_key(a) != reuse_key(b)


def test_sweep_replicates_train_stacked_and_equal_separate_runs():
    """A sweep trial's seeds (pinnlab.runs.run_replicates): one stacked training (one trainer,
    k = 3), each seed's run its own result, whose steps equal a fresh run of that seed to float
    rounding (batched against plain matmuls)."""
    import numpy as np

    from pinnlab.config.replicates import replicate_config
    from pinnlab.runs import run_replicates

    cfg = load_config(
        "seed-fixed", ["model.width=7", "training.steps=15", "diagnostics.every=5", "divergence.heldout_points=64"]
    )
    runs = run_replicates(cfg, 3, reuse=True)
    assert len({id(r.trainer) for r in runs}) == 1 and runs[0].trainer.k == 3
    assert [r.result.config.training.seed for r in runs] == [cfg.training.seed + i for i in range(3)]
    assert {r.result.config.training.replicates for r in runs} == {1}  # each seed a single run's config
    steps = list(runs[0].trainer.step_names)
    for i, run in enumerate(runs):
        fresh = Trainer(replicate_config(cfg, i)).fit()
        assert run.result.outcome == fresh.outcome and run.result.steps_run == fresh.steps_run
        np.testing.assert_allclose(run.result.history[steps], fresh.history[steps], rtol=2e-4, atol=1e-6)


def test_seeds_the_stack_cannot_take_run_one_after_another_on_one_trainer():
    """A residual that reduces over its points is not stacked (pinnlab.config.replicates.check_replicates):
    the seeds run one after another, seed 0 builds and traces, seeds 1 and 2 reuse its trainer, bit
    for bit a fresh run's steps."""
    import pinnlab.training as training
    from pinnlab.config.replicates import replicate_config
    from pinnlab.runs import run_replicates

    cfg = load_config(
        "seed",
        [
            "model.width=7",
            "training.steps=12",
            "diagnostics.every=5",
            "divergence.heldout_points=64",
            "problem.params.literal=true",
        ],
    )
    training._CACHE = None  # a worker process's cache, fresh
    runs = run_replicates(cfg, 3, reuse=True)
    assert training._CACHE.hits == 2
    assert len({id(r.trainer) for r in runs}) == 1
    steps = list(runs[0].trainer.step_names)
    for i, run in enumerate(runs):
        fresh = Trainer(replicate_config(cfg, i)).fit()
        pd.testing.assert_frame_equal(run.result.history[steps], fresh.history[steps], check_exact=True)
