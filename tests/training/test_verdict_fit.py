"""Did it train: ``stalled`` and ``silent_failure`` beside ``stable``; no ``diverging`` label for a
run that is learning; causes only on a failure (risks on a run that worked); a sweep never ranks a
failed trial best (docs/verdicts.md, "Did it train")."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from pinnlab.config import load_config
from pinnlab.core.outcomes import Outcome
from pinnlab.training.divergence import classify_finished, classify_trend
from pinnlab.training.trends import descending, improvement

CFG = load_config("seed-fixed").divergence


def finished(**kw):
    base = dict(initial_loss=10.0, final_loss=5.0, rel_l2_error=0.9, heldout_ratio=1.0)
    return classify_finished(CFG, **{**base, **kw})


@pytest.mark.parametrize(
    "kw,outcome",
    [
        (dict(rel_l2_error=0.1), "stable"),  # right
        (dict(final_loss=0.05), "silent_failure"),  # wrong at 5e-3 of its initial loss
        (dict(final_loss=1.0), "stable"),  # wrong, loss at 0.1x: still training
        (dict(final_loss=9.0), "stalled"),  # wrong, loss barely moved
        (dict(rel_l2_error=None, final_loss=9.0), "stalled"),  # no exact solution: the loss decides
        (dict(rel_l2_error=None, final_loss=1.0), "stable"),
        (dict(rel_l2_error=None, heldout_ratio=1e4, final_loss=1e-4), "silent_failure"),
    ],
)
def test_the_fit_classes(kw, outcome):
    assert finished(**kw)[0] == outcome


def test_an_unbounded_loss_is_judged_by_the_error_trend():
    # a raw loss says nothing by its ratio: the error must be falling fast enough to be right at 10x
    steps = np.array([0, 100, 200, 299])
    falling = improvement("error/rel_l2", steps, np.array([3.0, 2.0, 1.2, 0.8]), 299, CFG.horizon)
    rising = improvement("error/rel_l2", steps, np.array([1.0, 3.0, 9.0, 26.0]), 299, CFG.horizon)
    assert falling.projected < CFG.max_rel_error < rising.projected
    assert finished(bounded=False, final_loss=-50.0, improving=falling)[0] == "stable"
    outcome, reason, _ = finished(bounded=False, final_loss=-50.0, improving=rising)
    assert outcome == "stalled" and "per doubling" in reason


def test_weights_that_grow_while_a_bounded_loss_descends_are_not_diverging():
    steps = np.arange(1080)
    norms = 2.0 * np.exp(8e-4 * steps)  # the growth that carried to 10x the budget claims x5,000
    rng = np.random.default_rng(0)
    learning = 3.0 * np.exp(-steps / 600) + 0.2 * rng.random(1080)
    kw = dict(norms=norms, end=1079, bounded_step=False)
    assert descending(learning, 1079, CFG.trend_window) is not None
    assert classify_trend(CFG, losses=learning, unbounded_terms=[], **kw) is None
    # the same weights with a loss that stopped falling and rises again: running away
    rising = np.concatenate([learning[:540], learning[540] + np.linspace(0, 2, 540)])
    assert descending(rising, 1079, CFG.trend_window) is None
    assert classify_trend(CFG, losses=rising, unbounded_terms=[], **kw).outcome == "diverging"
    # a loss unbounded below that falls is the runaway itself, not learning
    assert classify_trend(CFG, losses=-learning * steps, unbounded_terms=["residual"], **kw).outcome == "diverging"


@pytest.mark.parametrize("steps", [40, 1080])
def test_seed_fixed_is_stable_at_short_and_long_budgets(steps):
    from pinnlab.training import train

    r = train("seed-fixed", [f"training.steps={steps}", "diagnostics.sharpness=false"])
    assert r.outcome == Outcome.STABLE, r.reason


def test_a_run_that_worked_has_risks_not_causes():
    from pinnlab.training import train

    # boundary data weighted 100x over the residual: term_imbalance holds, yet the run trains
    r = train(
        "seed-fixed",
        [
            "training.steps=200",
            "loss.weights.boundary=100",
            "optimizer.learning_rate=1e-4",
            "diagnostics.sharpness=false",
        ],
    )
    assert r.outcome.worked, r.reason
    assert r.causes == [] and "term_imbalance" in r.risk_names
    assert r.summary()["risk_names"] == r.risk_names


def test_the_best_trial_of_a_sweep_is_one_that_worked(tmp_path):
    from pinnlab.sweep.runner import best_trial

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    study = optuna.create_study(study_name="s", storage=storage, direction="minimize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for x, value, outcome in ((0.1, 0.01, "stalled"), (0.2, 0.02, "silent_failure"), (0.3, 0.5, "stable")):
        study.add_trial(
            optuna.trial.create_trial(params={"x": x}, distributions=dist, value=value, user_attrs={"outcome": outcome})
        )
    best = best_trial(study, study.get_trials())
    assert best.params == {"x": 0.3} and best.value == 0.5


# the three larger presets take 5-15 s each: marked slow (run with -m slow)
WELL_POSED = [
    "seed-fixed",
    "poisson1d",
    *(pytest.param(p, marks=pytest.mark.slow) for p in ("poisson2d", "helmholtz2d", "convection1d")),
]


@pytest.mark.parametrize("preset", WELL_POSED)
def test_no_well_posed_preset_is_diverging_at_any_budget(preset):
    """One 1,000-step run judged at budgets 40 ... 1,000: a run of T steps is this run's first T
    steps (same seed, points and schedule), so its end-of-run label is ``classify_trend`` there."""
    from pinnlab.core.names import OPTIMIZERS
    from pinnlab.problems import resolve_problem
    from pinnlab.training import train

    r = train(preset, ["training.steps=1000", "diagnostics.sharpness=false"])
    assert not r.outcome.divergent, r.reason
    cfg = r.config
    norms = r.history["weight_norm/total"].to_numpy()
    losses = r.history["loss/total"].to_numpy()
    terms = cfg.loss.unbounded_terms(resolve_problem(cfg.problem.name, cfg.problem.params).term_names())
    for budget in (40, 100, 200, 400, 700, 1000):
        v = classify_trend(
            cfg.divergence,
            norms=norms,
            losses=losses,
            end=budget - 1,
            unbounded_terms=terms,
            bounded_step=OPTIMIZERS.get(cfg.optimizer.name).bounded_step,
        )
        assert v is None, f"{preset} at {budget} steps: {v.reason}"


SMALL = ["model.width=20", "model.depth=2", "training.jit_compile=false", "diagnostics.sharpness=false"]


def test_relu_on_poisson2d_stalls():
    """Its Laplacian is zero almost everywhere: the loss stays at 0.98x its start, the error near 1."""
    from pinnlab.training import train

    r = train(
        "poisson2d",
        [
            *SMALL,
            "model.activation=relu",
            "training.steps=300",
            "problem.params.n_residual=500",
            "problem.params.n_boundary=100",
        ],
    )
    assert r.outcome == Outcome.STALLED, r.reason
    assert "vanishing_derivative" in r.cause_names and r.risks == []


@pytest.mark.slow
def test_convection_at_beta_30_fails_silently():
    """Krishnapriyan et al. 2021: the loss falls far, the answer stays wrong (4,000 steps, as the
    label benchmark's truth run of ``convection1d beta30``)."""
    from pinnlab.training import train

    r = train(
        "convection1d",
        [
            *SMALL,
            "problem.params.beta=30",
            "problem.params.n_residual=400",
            "problem.params.n_initial=64",
            "problem.params.n_boundary=32",
            "training.steps=4000",
        ],
    )
    assert r.outcome == Outcome.SILENT_FAILURE, r.reason
