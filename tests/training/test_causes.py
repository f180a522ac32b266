"""The causes catalogue: each cause on a constructed run (one that must fire, one that must not),
the causes known before training, and their way into the CLI output and the MLflow tags."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pinnlab import load_config
from pinnlab.training.causes import CAUSES, cause_tags, run_causes, static_causes

SQUARED_TANH = ["loss.formulation=squared", "model.activation=tanh", "problem.params.constraint=dirichlet"]


def _history(n=400, every=100, **cols):
    h = pd.DataFrame({"loss/total": np.linspace(1.0, 0.5, n), "weight_norm/total": np.ones(n)})
    h.index.name = "step"
    for name, values in cols.items():
        col = np.full(n, np.nan)
        vals = np.broadcast_to(np.asarray(values, float), (len(range(0, n, every)),))
        col[::every] = vals
        h[name.replace("__", "/")] = col
    return h


def _names(cfg, h, terms=("residual", "boundary"), **summary):
    return [c.cause for c in run_causes(cfg, h, terms=list(terms), summary=summary)]


def test_every_cause_is_in_the_catalogue():
    assert set(CAUSES) == {
        "unbounded_loss",
        "step_too_large",
        "vanishing_derivative",
        "term_imbalance",
        "bias_starvation",
        "collocation_overfit",
        "precision",
    }


def test_unbounded_loss_needs_the_formulation_and_a_falling_loss():
    raw = load_config("seed", ["model.activation=tanh"])
    h = _history()
    h["loss/total"] = -0.01 * np.arange(400)
    causes = run_causes(raw, h, terms=["residual"], summary={})
    assert [c.cause for c in causes] == ["unbounded_loss"] and "per step" in causes[0].evidence
    assert "loss.formulation=squared" in causes[0].remedy
    assert _names(load_config("seed", SQUARED_TANH), h) == []
    rising = _history()
    rising["loss/total"] = 0.01 * np.arange(400)
    assert _names(raw, rising, terms=["residual"]) == []


def test_step_too_large_gives_the_learning_rate_under_the_threshold():
    cfg = load_config("seed", SQUARED_TANH + ["optimizer.learning_rate=0.1"])
    h = _history(**{"sharpness__ratio": [0.5, 2.0, 0.9, 0.8], "sharpness__top": [10, 40, 18, 16]})
    (c,) = run_causes(cfg, h, terms=["residual", "boundary"], summary={})
    assert c.cause == "step_too_large" and "at step 100" in c.evidence and "<= 0.05" in c.remedy
    at_edge = _history(**{"sharpness__ratio": [0.5, 1.05, 1.0, 0.98], "sharpness__top": 1.0})
    assert _names(cfg, at_edge) == []


def test_vanishing_derivative_names_the_zero_derivative():
    relu = load_config("seed", ["loss.formulation=squared", "model.output_activation=linear"])
    h = _history(**{"deriv__u_x": [0.3, 0.4, 0.5, 0.5], "deriv__u_yy": 0.0})
    (c,) = run_causes(relu, h, terms=["residual"], summary={})
    assert c.cause == "vanishing_derivative" and "zero: deriv/u_yy" in c.evidence
    smooth = load_config("seed", SQUARED_TANH)
    assert _names(smooth, _history(**{"deriv__u_x": 0.3, "deriv__u_yy": 0.1})) == []
    # measured zero without a flagged activation still fires
    assert _names(smooth, h) == ["vanishing_derivative"]


def test_term_imbalance_over_the_documented_factor_only():
    cfg = load_config("seed", SQUARED_TANH)
    apart = _history(**{"grad_norm__residual": 50.0, "grad_norm__boundary": 0.1})
    (c,) = run_causes(cfg, apart, terms=["residual", "boundary"], summary={})
    assert c.cause == "term_imbalance" and "grad_norm/residual" in c.evidence and "loss.weights.boundary" in c.remedy
    assert _names(cfg, _history(**{"grad_norm__residual": 5.0, "grad_norm__boundary": 0.1})) == []


def test_bias_starvation_below_the_documented_ratio():
    cfg = load_config("seed", ["loss.formulation=squared", "model.activation=tanh"])  # no term on u itself
    starved = _history(**{"grad_norm__dense__kernel": 1.0, "grad_norm__dense__bias": 0.05})
    assert _names(cfg, starved) == ["bias_starvation"]
    fed = _history(**{"grad_norm__dense__kernel": 1.0, "grad_norm__dense__bias": 0.5})
    assert _names(cfg, fed) == []
    # a loss with a Dirichlet term on u already has what the remedy adds: not this cause
    assert _names(load_config("seed", SQUARED_TANH), starved) == []
    # ... unless that term is weighted off
    assert _names(load_config("seed", [*SQUARED_TANH, "loss.weights.boundary=0"]), starved) == ["bias_starvation"]


def test_collocation_overfit_and_precision():
    cfg = load_config("seed", SQUARED_TANH)
    assert _names(cfg, _history(), heldout_ratio=50.0) == ["collocation_overfit"]
    assert _names(cfg, _history(), heldout_ratio=2.0) == []
    h = _history()
    h.loc[398, "loss/total"] = -1e37
    h.loc[399, "loss/total"] = np.nan
    assert "precision" in _names(cfg, h, nan_onset_step=399)
    assert "precision" not in _names(cfg, _history(), nan_onset_step=399)


def test_static_causes_before_training():
    seed = {c.cause for c in static_causes(load_config("seed"))}
    assert seed == {"vanishing_derivative", "unbounded_loss"}
    assert static_causes(load_config("seed-fixed")) == []


def test_cause_tags():
    assert cause_tags([{"cause": "unbounded_loss", "evidence": "e", "remedy": "r"}]) == {"cause.unbounded_loss": "e"}


def test_run_prints_causes_and_json_carries_them(capsys):
    from pinnlab.cli import main

    args = [
        "run",
        "seed",
        "--no-track",
        "--quiet",
        "--set",
        "model.width=4",
        "--set",
        "training.batch_size=3600",
        "--set",
        "training.steps=40",
        "--set",
        "diagnostics.every=10",
        "--set",
        "model.activation=tanh",
        "--set",
        "optimizer.learning_rate=0.1",
    ]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "known cause before training: unbounded_loss" in err
    assert "cause: unbounded_loss" in out and "remedy:" in out


def test_causes_counted_per_factor_level_and_per_outcome():
    from pinnlab.analysis.causes import cause_totals, causes_by_factor, causes_by_outcome

    trials = pd.DataFrame(
        {
            "trial": [0, 1, 2, 3],
            "outcome": ["diverging", "stable", "blowup", "crash"],
            "loss.formulation": ["raw", "squared", "raw", "raw"],
            "cause_names": ["unbounded_loss", "", "unbounded_loss,bias_starvation", None],
            "known_causes": ["unbounded_loss", "", "unbounded_loss", "unbounded_loss"],
        }
    )
    assert cause_totals(trials) == {"bias_starvation": 1, "unbounded_loss": 2}  # the crash is not judged
    by = causes_by_factor(trials, ["loss.formulation"]).set_index("level")
    assert by.loc["raw", "n"] == 2 and by.loc["raw", "unbounded_loss"] == 2 and by.loc["squared", "unbounded_loss"] == 0
    out = causes_by_outcome(trials)
    assert set(map(tuple, out[["outcome", "cause"]].to_numpy())) == {
        ("diverging", "unbounded_loss"),
        ("blowup", "unbounded_loss"),
        ("blowup", "bias_starvation"),
    }
