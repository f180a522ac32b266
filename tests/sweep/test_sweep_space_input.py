"""Sweep files whose space, objective or pruner no trial can satisfy: one line, exit code 2, nothing written.

A sweep file is checked when it is loaded, before any study, slot or MLflow run exists: each
dimension's shape (ranges, steps, choices), every config path, the whole config of every corner of
the space (categorical choices with the ends of numeric ranges, :func:`pinnlab.sweep.space.corners`)
and the objective and pruner metrics against what those configs produce
(:func:`pinnlab.sweep.metrics.objective_metrics`).  ``CASES`` is generated where that is natural:
every numeric and every categorical dimension of the shipped ``sweeps/*.yaml`` with each bad shape,
and their objectives and pruner metrics misspelt; the rest are combinations written out.  The
harness (files, the ``workdir`` fixture, the one-line check) is tests/cli/test_bad_input.py's.

The producible metrics are derived from the config without TensorFlow; the last tests train tiny
configs and check that every column they log is among them, so the derivation cannot drift from
the trainer unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinnlab.config import load_config
from pinnlab.core.errors import ConfigError
from pinnlab.core.summary import OBJECTIVE_METRICS
from pinnlab.sweep.metrics import objective_metrics, pruner_metrics
from pinnlab.sweep.space import MAX_CORNERS, corners
from pinnlab.sweep.spec import ParamSpec, load_sweep
from tests.cli.test_bad_input import (
    _listing,
    check_one_line,
    workdir,  # noqa: F401 (a fixture)
)
from tests.cli.test_bad_input import test_bad_input as check_case  # renamed: not collected here again

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "sweeps").glob("*.yaml"))}
FILES: dict[str, str] = {}  # file name -> sweep file text, written into the case's directory


def sweep_file(name: str, data: dict[str, Any]) -> str:
    FILES[name] = yaml.safe_dump(data, sort_keys=False)
    return name


def variant(stem: str, **changes: Any) -> dict[str, Any]:
    """A shipped sweep file with top-level entries replaced (``space`` merged path by path)."""
    data = yaml.safe_load(yaml.safe_dump(SHIPPED[stem]))
    space = changes.pop("space", None)
    if space is not None:
        data["space"] = {**data["space"], **space}
    return {**data, **changes}


CASES: list[tuple[str, list[str], list[str]]] = []


def case(case_id: str, data: dict[str, Any], words: list[str], *flags: str) -> None:
    CASES.append((case_id, ["sweep", sweep_file(f"{case_id}.yaml", data), *flags], words))


# ---- every numeric dimension of the shipped sweeps, with each bad range shape


def _range_shapes(low, high, log: bool) -> dict[str, tuple[dict[str, Any], list[str]]]:
    width = high - low
    ints = isinstance(low, int) and isinstance(high, int)
    undivided = (width - 1 if width > 2 else 3) if ints else round(width * 0.4, 12)
    return {
        "step-larger-than-range": ({"low": low, "high": high, "step": width * 2}, ["larger than the range"]),
        "step-not-dividing": ({"low": low, "high": high, "step": undivided}, ["does not divide", "multiple of step"]),
        "step-zero": ({"low": low, "high": high, "step": 0}, ["step", "greater than 0"]),
        "low-true": ({"low": True, "high": high}, [".low", "True", "a number"]),
        "high-false": ({"low": low, "high": False}, [".high", "False", "a number"]),
        "low-string": ({"low": "small", "high": high}, [".low", "'small'", "a number"]),
        "int-type-fractional-low": (
            {"low": low + 0.5 if ints else low, "high": high, "type": "int", "log": log},
            ["type int", "integral"],
        ),
        "log-with-step": ({"low": low, "high": high, "log": True, "step": width}, ["step and log"]),
        "low-above-high": ({"low": high, "high": low, "log": log}, ["low <= high"]),
        "low-equals-high": ({"low": low, "high": low, "log": log}, ["not a range", "overrides"]),
        "log-zero-low": ({"low": 0, "high": high, "log": True}, ["log scale", "low > 0"]),
        "log-negative-low": ({"low": -1, "high": high, "log": True}, ["log scale", "low=-1"]),
        "high-infinite": ({"low": low, "high": float("inf"), "log": log}, [".high", "finite"]),
    }


for stem, data in SHIPPED.items():
    for path, dim in data["space"].items():
        if "low" not in dim:
            continue
        for shape, (bad, words) in _range_shapes(dim["low"], dim["high"], dim.get("log", False)).items():
            case(f"{stem}-{path}-{shape}", variant(stem, space={path: bad}), [f"space.{path}", *words])


# ---- every categorical dimension of the shipped sweeps, with each bad choice list


def _choice_shapes(choices: list[Any]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    other = "fast" if not isinstance(choices[0], str) else 3
    return {
        "empty": ({"choices": []}, ["at least one choice"]),
        "duplicated": ({"choices": [*choices, choices[0]]}, [repr(choices[0]), "given twice"]),
        "mixed-types": ({"choices": [*choices, other]}, ["they mix"]),
        "mapping-choice": ({"choices": [*choices, {"a": 1}]}, ["{'a': 1}", "not a mapping or list"]),
        "list-choice": ({"choices": [*choices, [1, 2]]}, ["[1, 2]", "not a mapping or list"]),
        "with-low-high": ({"choices": choices, "low": 1, "high": 2}, ["either choices or low/high"]),
    }


for stem, data in SHIPPED.items():
    for path, dim in data["space"].items():
        if "choices" not in dim:
            continue
        for shape, (bad, words) in _choice_shapes(dim["choices"]).items():
            case(f"{stem}-{path}-{shape}", variant(stem, space={path: bad}), [f"space.{path}", *words])


# ---- objectives and pruner metrics no trial produces

for stem, data in SHIPPED.items():
    metric = data["objective"]["metric"]
    case(
        f"{stem}-objective-typo",
        variant(stem, objective={"metric": metric[:-1]}),
        ["objective.metric", repr(metric[:-1]), f"did you mean {metric!r}", "PRUNED", "allowed:"],
    )
    if data.get("replicates", 1) == 1:  # a pruner is refused with replicates (test_boundary.py)
        case(
            f"{stem}-pruner-typo",
            variant(stem, pruner={"name": "median", "metric": "loss/totl"}),
            ["pruner.metric", "'loss/totl'", "did you mean 'loss/total'", "allowed:"],
        )

SEED = {"base": "seed", "overrides": {"training.steps": 50}, "space": {"model.width": {"choices": [5, 10]}}}
POISSON = {"base": "poisson2d", "overrides": {"training.steps": 50}, "space": {"model.width": {"choices": [5, 10]}}}

METRICS = [
    (
        "rel-l2-error-without-exact-solution",
        {**SEED, "objective": {"metric": "rel_l2_error"}},
        ["objective.metric", "'rel_l2_error'", "no exact solution"],
    ),
    (
        "error-history-without-exact-solution",
        {**SEED, "objective": {"metric": "error/rel_l2"}},
        ["objective.metric", "'error/rel_l2'", "no exact solution"],
    ),
    (
        "rel-l2-error-seed-anchor",
        {**SEED, "overrides": {"problem.params.constraint": "anchor"}, "objective": {"metric": "rel_l2_error"}},
        ["objective.metric", "no exact solution"],
    ),
    (
        "pruner-ntk-trace-off",
        {**POISSON, "pruner": {"name": "median", "metric": "ntk_trace/residual"}},
        ["pruner.metric", "'ntk_trace/residual'", "diagnostics.ntk_trace: true"],
    ),
    (
        "pruner-error-flag-off",
        {**POISSON, "overrides": {"diagnostics.error": False}, "pruner": {"name": "median", "metric": "error/rel_l2"}},
        ["pruner.metric", "diagnostics.error: true"],
    ),
    (
        "pruner-sharpness-off",
        {
            **POISSON,
            "overrides": {"diagnostics.sharpness": False},
            "pruner": {"name": "halving", "metric": "sharpness/top"},
        },
        ["pruner.metric", "'sharpness/top'", "diagnostics.sharpness: true"],
    ),
    (
        "pruner-per-layer-off",
        {
            **POISSON,
            "overrides": {"diagnostics.per_layer": False},
            "pruner": {"name": "median", "metric": "weight_norm/dense_1/kernel"},
        },
        ["pruner.metric", "diagnostics.per_layer: true"],
    ),
    (
        "objective-update-ratio-off",
        {
            **POISSON,
            "overrides": {"diagnostics.update_ratio": False},
            "objective": {"metric": "update_ratio/dense_1/kernel"},
        },
        ["objective.metric", "diagnostics.update_ratio: true"],
    ),
    (
        "objective-lambda-with-fixed-weights",
        {**POISSON, "objective": {"metric": "lambda/boundary"}},
        ["objective.metric", "'lambda/boundary'", "allowed:"],
    ),
    (
        "objective-l2-loss-when-l2-can-be-zero",
        {**SEED, "space": {"regularization.l2": {"choices": [0.0, 1.0e-4]}}, "objective": {"metric": "loss/l2"}},
        ["objective.metric", "trials with regularization.l2=0.0", "those trials would be PRUNED"],
    ),
    (
        "objective-layer-beyond-the-shallow-end",
        {
            **POISSON,
            "space": {"model.depth": {"low": 1, "high": 4}},
            "objective": {"metric": "weight_norm/dense_4/kernel"},
        },
        ["objective.metric", "trials with model.depth=1"],
    ),
    (
        "pruner-layer-beyond-every-depth",
        {
            **POISSON,
            "space": {"model.depth": {"low": 1, "high": 4}},
            "pruner": {"name": "median", "metric": "weight_norm/dense_9/kernel"},
        },
        ["pruner.metric", "'weight_norm/dense_9/kernel'", "never see it"],
    ),
    (
        "objective-not-a-trial-metric",
        {**SEED, "objective": {"metric": "initial_loss"}},
        ["objective.metric", "'initial_loss'", "allowed:"],
    ),
    ("objective-empty", {**SEED, "objective": {"metric": ""}}, ["objective.metric", "''"]),
    (
        "objective-sharpness-ratio-with-lbfgs",
        {
            **POISSON,
            "overrides": {"optimizer.name": "lbfgs", "training.steps": 50},
            "objective": {"metric": "sharpness/ratio"},
        },
        ["objective.metric", "'sharpness/ratio'"],
    ),
    (
        "objective-ntk-trace-not-logged",
        {
            **POISSON,
            "overrides": {"training.replicates": 2, "training.steps": 50},
            "objective": {"metric": "ntk_trace/residual"},
        },
        ["objective.metric", "'ntk_trace/residual'"],
    ),
    (
        "objective-unknown-term",
        {**POISSON, "objective": {"metric": "loss/initial"}},
        ["objective.metric", "'loss/initial'"],
    ),
]
for case_id, data, words in METRICS:
    case(case_id, data, words)

# ---- combinations that config validation rejects (corners), and paths that are no single value

COMBINATIONS = [
    (
        "steps-and-epochs-sampled",
        {
            "base": "seed",
            "space": {"training.steps": {"low": 10, "high": 20}, "training.epochs": {"low": 1, "high": 2}},
        },
        ["space:", "training.steps=10", "training.epochs=1", "not both"],
    ),
    (
        "steps-sampled-epochs-in-overrides",
        {"base": "seed", "overrides": {"training.epochs": 2}, "space": {"training.steps": {"low": 10, "high": 20}}},
        ["space.training.steps", "training.epochs is set in overrides"],
    ),
    (
        "epochs-sampled-steps-in-overrides",
        {"base": "poisson2d", "overrides": {"training.steps": 50}, "space": {"training.epochs": {"choices": [1, 2]}}},
        ["space.training.epochs", "training.steps is set in overrides"],
    ),
    (
        "path-in-overrides-and-space",
        {"base": "seed", "overrides": {"model.width": 10}, "space": {"model.width": {"choices": [5, 20]}}},
        ["space.model.width", "model.width is set in overrides"],
    ),
    (
        "lbfgs-with-grad-norm",
        {
            "base": "poisson2d",
            "space": {
                "optimizer.name": {"choices": ["adam", "lbfgs"]},
                "loss.weighting.scheme": {"choices": ["fixed", "grad_norm"]},
            },
        },
        ["space:", "optimizer.name='lbfgs'", "loss.weighting.scheme='grad_norm'", "first-order optimizer"],
    ),
    (
        "lbfgs-with-ntk",
        {
            "base": "poisson2d",
            "space": {
                "loss.weighting.scheme": {"choices": ["ntk", "fixed"]},
                "optimizer.name": {"choices": ["sgd", "lbfgs"]},
            },
        },
        ["space:", "optimizer.name='lbfgs'", "loss.weighting.scheme='ntk'"],
    ),
    (
        "lbfgs-with-grad-norm-among-others",
        {
            "base": "poisson2d",
            "space": {
                "model.activation": {"choices": ["tanh", "sin"]},
                "model.width": {"low": 5, "high": 50},
                "optimizer.name": {"choices": ["adam", "sgd", "lbfgs"]},
                "optimizer.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
                "loss.weighting.scheme": {"choices": ["fixed", "grad_norm"]},
            },
        },
        ["space: trials with optimizer.name='lbfgs', loss.weighting.scheme='grad_norm' are invalid"],
    ),
    (
        "replicates-with-lbfgs",
        {
            "base": "poisson2d",
            "space": {"training.replicates": {"choices": [1, 2]}, "optimizer.name": {"choices": ["adam", "lbfgs"]}},
        },
        ["space:", "training.replicates=2", "optimizer.name='lbfgs'", "replicates"],
    ),
    (
        "replicates-with-literal-seed",
        {
            "base": "seed",
            "space": {
                "training.replicates": {"low": 1, "high": 3},
                "problem.params.literal": {"choices": [False, True]},
            },
        },
        ["space:", "training.replicates=3", "problem.params.literal=True"],
    ),
    (
        "batch-larger-than-sampled-points",
        {
            "base": "poisson2d",
            "space": {
                "training.batch_size": {"choices": [None, 150]},
                "problem.params.n_residual": {"choices": [100, 400]},
            },
        },
        ["space:", "training.batch_size=150", "problem.params.n_residual=100", "larger than"],
    ),
    (
        "section-as-categorical",
        {"base": "seed", "space": {"model": {"choices": ["small", "large"]}}},
        ["space.model", "config section", "width"],
    ),
    (
        "section-as-range",
        {"base": "seed", "space": {"optimizer": {"low": 1, "high": 2}}},
        ["space.optimizer", "config section", "learning_rate"],
    ),
    (
        "schedule-section",
        {"base": "seed", "space": {"optimizer.schedule": {"choices": ["a", "b"]}}},
        ["space.optimizer.schedule", "config section", "decay_steps"],
    ),
    (
        "problem-params-section",
        {"base": "convection1d", "space": {"problem.params": {"choices": ["x", "y"]}}},
        ["space.problem.params", "config section", "beta"],
    ),
    (
        "loss-weights-mapping",
        {"base": "poisson2d", "space": {"loss.weights": {"choices": ["a", "b"]}}},
        ["space.loss.weights", "config section"],
    ),
    (
        "section-choices-are-mappings",
        {"base": "seed", "space": {"model": {"choices": [{"width": 5}, {"width": 10}]}}},
        ["space.model:", "not a mapping or list"],
    ),
    (
        "problem-params-choices-are-mappings",
        {"base": "convection1d", "space": {"problem.params": {"choices": [{"beta": 1.0}, {"beta": 2.0}]}}},
        ["space.problem.params:", "not a mapping or list"],
    ),
    (
        "bool-and-int-choices",
        {"base": "seed", "space": {"training.batch_size": {"choices": [True, 1]}}},
        ["they mix booleans and numbers"],
    ),
    (
        "equal-int-and-float-choices",
        {"base": "seed", "space": {"optimizer.learning_rate": {"choices": [1, 1.0]}}},
        ["1.0", "given twice"],
    ),
    (
        "too-many-choices",
        {"base": "seed", "space": {"model.width": {"choices": list(range(1, 1202))}}},
        ["space.model.width:", "1201 choices", "at most 1000"],
    ),
    (
        "type-int-fractional-step",
        {"base": "seed", "space": {"model.width": {"low": 4, "high": 10, "step": 1.5, "type": "int"}}},
        ["space.model.width", "type int", "step=1.5"],
    ),
    (
        "float-step-larger-than-range",
        {"base": "seed", "space": {"optimizer.learning_rate": {"low": 0.001, "high": 0.01, "step": 0.02}}},
        ["space.optimizer.learning_rate", "larger than the range"],
    ),
    (
        "choices-with-log",
        {"base": "seed", "space": {"model.width": {"choices": [5, 10], "log": True}}},
        ["space.model.width", "either choices or low/high"],
    ),
    (
        "grid-without-step",
        {
            "base": "seed",
            "space": {"optimizer.learning_rate": {"low": 0.001, "high": 0.01}},
            "sampler": {"name": "grid"},
        },
        ["space.optimizer.learning_rate", "needs `step`"],
    ),
    (
        "grid-too-large",
        {
            "base": "poisson2d",
            "space": {
                "model.width": {"low": 1, "high": 1000, "step": 1},
                "model.depth": {"low": 1, "high": 200, "step": 1},
            },
            "sampler": {"name": "grid"},
        },
        ["space", "200000 points", "at most 100000"],
    ),
    (
        "grid-width-a-billion",
        {
            "base": "seed",
            "space": {"training.seed": {"low": 0, "high": 1000000000, "step": 1}},
            "sampler": {"name": "grid"},
        },
        ["space", "1000000001 points"],
    ),
]
for case_id, data, words in COMBINATIONS:
    case(case_id, data, words)

# ---- --smoke: the same checks, and the corners of the smoke configs too

case(
    "smoke-overrides-lbfgs-with-grad-norm",
    {
        **POISSON,
        "space": {"loss.weighting.scheme": {"choices": ["fixed", "grad_norm"]}},
        "smoke": {"overrides": {"training.steps": 20, "optimizer.name": "lbfgs"}},
    },
    ["space:", "loss.weighting.scheme='grad_norm'", "(with smoke.overrides)", "first-order"],
    "--smoke",
)
case(
    "smoke-batch-larger-than-points",
    {
        **POISSON,
        "space": {"problem.params.n_residual": {"choices": [100, 400]}},
        "smoke": {"overrides": {"training.steps": 20, "training.batch_size": 200}},
    },
    ["space:", "problem.params.n_residual=100", "(with smoke.overrides)", "larger than"],
    "--smoke",
)
case(
    "smoke-budget-replaced-by-sampled-epochs",
    {"base": "poisson2d", "space": {"training.epochs": {"choices": [1, 2]}}},
    ["space.training.epochs", "training.steps is set in smoke.overrides (by default)"],
    "--smoke",
)
for source in (
    "steps-and-epochs-sampled",
    "lbfgs-with-grad-norm",
    "section-as-categorical",
    "rel-l2-error-without-exact-solution",
    "pruner-ntk-trace-off",
    "grid-too-large",
):
    _, argv, words = next(c for c in CASES if c[0] == source)
    CASES.append((f"smoke-{source}", [*argv, "--smoke"], words))


@pytest.fixture
def sweepdir(workdir):
    """tests/cli/test_bad_input.py's case directory, with this file's sweep files in it."""
    for name, text in FILES.items():
        (workdir / name).write_text(text)
    return workdir


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_bad_sweep_space(sweepdir, capsys, argv, words):
    t0 = time.monotonic()
    check_case(sweepdir, capsys, argv, words)  # exit 2, one line with the words, nothing written
    assert time.monotonic() - t0 < 15


@pytest.mark.parametrize(
    "case_id", ["lbfgs-with-grad-norm", "rel-l2-error-without-exact-solution", "smoke-steps-and-epochs-sampled"]
)
def test_bad_sweep_space_through_the_command(sweepdir, case_id):
    """The installed command, where a traceback would reach the terminal (and start-up counts)."""
    _, argv, words = next(c for c in CASES if c[0] == case_id)
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    before = _listing(sweepdir)
    t0 = time.monotonic()
    proc = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=120)
    check_one_line(proc.returncode, proc.stdout, proc.stderr, "sweep", words, time.monotonic() - t0)
    assert time.monotonic() - t0 < 15 and _listing(sweepdir) == before


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) > 200
    assert len({i for i, _, _ in CASES}) == len(CASES)


# ------------------------------------------------------------------ what stays accepted

GOOD = [
    {"base": "seed", "space": {"training.batch_size": {"choices": [None, 10]}}},  # null is the default
    {"base": "seed", "space": {"model.width": {"choices": [5]}}},  # one choice: a constant kept as a column
    {"base": "seed", "space": {"optimizer.learning_rate": {"choices": [1, 0.1]}}},  # ints and floats are numbers
    {
        "base": "seed",
        "space": {"optimizer.learning_rate": {"low": 0.1, "high": 0.3, "step": 0.1}},
    },  # 0.3-0.1 in decimals
    {"base": "seed", "space": {"model.width": {"low": 5.0, "high": 11.0, "step": 2, "type": "int"}}},
    {
        "base": "seed",
        "space": {"training.epochs": {"choices": [1, 2]}},  # replaces the preset's epochs
        "smoke": {"overrides": {"diagnostics.every": 10}},
    },  # a smoke that keeps the sampled budget
    {
        "base": "poisson2d",
        "overrides": {"loss.weighting.scheme": "grad_norm"},
        "space": {"model.width": {"choices": [5, 10]}},
        "objective": {"metric": "lambda/boundary"},
        "pruner": {"name": "median", "metric": "lambda/boundary"},
    },
    {
        "base": "poisson2d",
        "overrides": {"diagnostics.ntk_trace": True},
        "space": {"model.width": {"choices": [5, 10]}},
        "pruner": {"name": "median", "metric": "ntk_trace/boundary"},
    },
    {"base": "seed", "space": {"regularization.l2": {"choices": [1.0e-4, 1.0e-2]}}, "objective": {"metric": "loss/l2"}},
    {"base": "seed", "space": {"model.width": {"choices": [5, 10]}}, "objective": {"metric": "deriv/u_xy+u_yy"}},
    {"base": "seed-fixed", "space": {"model.width": {"choices": [5, 10]}}, "objective": {"metric": "rel_l2_error"}},
    {
        "base": "poisson2d",
        "space": {"model.depth": {"low": 1, "high": 4}},  # some trials report it: enough to prune
        "pruner": {"name": "median", "metric": "weight_norm/dense_5/kernel"},
    },
    {"base": "poisson2d", "space": {"optimizer.name": {"choices": ["adam", "lbfgs"]}}},
]


@pytest.mark.parametrize("data", GOOD, ids=range(len(GOOD)))
def test_good_sweep_files_still_load(tmp_path, data):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_sweep(path)
    spec.for_smoke()


def test_corners_are_the_product_then_pairs():
    small = {"a": ParamSpec(choices=[1, 2, 3]), "b": ParamSpec(low=0.1, high=0.5)}
    assert list(corners(small)) == [{"a": a, "b": b} for a in (1, 2, 3) for b in (0.1, 0.5)]
    big = {f"x{i}": ParamSpec(choices=list(range(5))) for i in range(6)}  # 15,625 > MAX_CORNERS
    seen = list(corners(big))
    assert len(seen) <= 2 * MAX_CORNERS
    pairs = {(a, b, c[a], c[b]) for c in seen for a in c for b in c if a < b}
    assert {("x0", "x1", i, j) for i in range(5) for j in range(5)} <= pairs  # every pair of values


# ------------------------------------------------------------------ the derived metrics are the trainer's

TINY = ["training.steps=21", "diagnostics.every=10", "training.jit_compile=false", "divergence.heldout_points=256"]
SMALL = ["problem.params.n_residual=200", "problem.params.n_boundary=40", "model.width=8"]
DATA_DEPENDENT = {"trend/ln_weight_norm", "trend/loss"}  # fitted once the window has enough steps


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("seed", ["model.width=8", "training.batch_size=null"]),  # sgd, raw loss, own derivatives
        (
            "poisson2d",
            SMALL
            + ["loss.weighting.scheme=grad_norm", "regularization.l2=1e-4", "optimizer.name=rmsprop", "model.depth=2"],
        ),
        ("poisson2d", SMALL + ["optimizer.name=lbfgs"]),
        ("poisson1d", ["training.replicates=2", "model.width=8", "regularization.l1=1e-4"]),
    ],
    ids=["seed-sgd", "poisson-grad-norm-rmsprop", "poisson-lbfgs", "poisson1d-replicates"],
)
def test_every_logged_metric_is_producible_and_every_derived_one_logged(preset, overrides):
    from pinnlab.training import train

    cfg = load_config(preset, TINY + overrides)
    result = train(cfg)
    summary = result.summary()
    columns = set(result.history.columns)
    objective, pruner = objective_metrics(cfg), pruner_metrics(cfg)
    assert [c for c in columns if c not in pruner] == []
    assert [m for m in columns | set(summary["final_metrics"]) if m not in objective] == []
    assert set(pruner.names) - DATA_DEPENDENT <= columns
    for name in OBJECTIVE_METRICS:
        if name in objective and name != "alarm_step":  # null until an alarm fires
            assert summary[name] is not None, name
    if "rel_l2_error" not in objective.names:
        assert summary["rel_l2_error"] is None


def test_a_config_error_is_still_raised_through_the_api(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(COMBINATIONS[4][1]))
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert info.value.field == "space" and "optimizer.name='lbfgs'" in info.value.message


def test_a_spec_stored_with_a_study_is_held_to_optunas_rules_only():
    """Workers read the spec from the study: one written under laxer rules stays joinable, and one
    that Optuna could not run (or that is not a spec) is a one-line error, not a traceback."""
    from pinnlab.sweep.spec import SweepSpec

    lax = {
        "base": "seed",
        "study_name": "old",
        "space": {
            "model.width": {"low": 5, "high": 5},
            "model.depth": {"choices": [1, 1]},
            "optimizer.learning_rate": {"low": 0.001, "high": 0.01, "step": 0.004},
        },
    }
    assert SweepSpec.from_dict(lax).space["model.depth"].choices == [1, 1]
    with pytest.raises(ConfigError) as info:
        SweepSpec.from_dict({**lax, "space": {"model.width": {"low": 10, "high": 5}}})
    assert "stored with this study" in str(info.value) and "low <= high" in str(info.value)
