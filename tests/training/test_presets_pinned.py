"""Every preset as a plain run (one replicate) gives the outcome, onsets, first non-finite tensor
and final loss it gave before the trainer had a replica axis: the figures below were measured with
the two-engine trainer and equal the one engine's bit for bit on this machine; the tolerance only
allows another CPU's float rounding."""

from __future__ import annotations

import pytest

from pinnlab.backend import import_tensorflow
from pinnlab.config import load_config

import_tensorflow()

from pinnlab.training import build_trainer  # noqa: E402

PINNED = [
    ("seed", ["training.steps=60"], "stable", None, None, None, 60, -0.22398695349693298),
    ("seed-fixed", ["training.steps=60"], "stable", None, None, None, 60, 3.4806315898895264),
    ("seed-answer", ["training.steps=60"], "stable", None, None, None, 60, -0.28979626297950745),
    ("poisson1d", ["training.steps=60"], "stable", None, None, None, 60, 2885.25537109375),
    ("poisson2d", ["training.steps=20"], "stable", None, None, None, 20, 71.06009674072266),
    ("convection1d", ["training.steps=60"], "stable", None, None, None, 60, 0.2081083208322525),
    ("helmholtz2d", ["training.steps=30"], "stalled", None, None, None, 30, 7219.4365234375),
    (
        "seed-fixed",
        ["training.steps=20", "optimizer.learning_rate=1e19"],
        "nan",
        0,
        "weight_norm/updated",
        0,
        1,
        17.68170166015625,
    ),
    (
        "poisson2d",
        ["training.steps=20", "optimizer.learning_rate=1e19", "training.jit_compile=false"],
        "nan",
        0,
        "weight_norm/updated",
        0,
        1,
        99.37075805664062,
    ),
    (
        "seed",
        ["training.steps=300", "optimizer.learning_rate=0.3", "divergence.loss_floor=-50"],
        "unbounded",
        None,
        None,
        21,
        22,
        -71.65882110595703,
    ),
]


@pytest.mark.parametrize(
    "preset, overrides, outcome, nan_step, first_bad, div_step, steps, final_loss",
    PINNED,
    ids=[f"{p[0]}-{i}" for i, p in enumerate(PINNED)],
)
def test_presets_as_plain_runs_keep_their_outcomes_and_onsets(
    preset, overrides, outcome, nan_step, first_bad, div_step, steps, final_loss
):
    r = build_trainer(load_config(preset, overrides)).fit()
    assert (str(r.outcome), r.nan_onset_step, r.first_nonfinite, r.divergence_step, r.steps_run) == (
        outcome,
        nan_step,
        first_bad,
        div_step,
        steps,
    )
    assert r.final_loss == pytest.approx(final_loss, rel=1e-5)
    assert r.replicates is None  # a plain run reports no replicate rows
