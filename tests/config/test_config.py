"""pinnlab.config at the API level: base chains, dotted overrides and their types, the budget rule,
unknown keys, and every name field checked against the catalogue.  The command line's one-line
error contract for the same inputs is in tests/cli/test_cli_errors.py."""

from __future__ import annotations

import pydantic
import pytest

from pinnlab.config import (
    RunConfig,
    StrictModel,
    apply_overrides,
    flatten,
    load_config,
    parse_override,
    preset_names,
)
from pinnlab.core import names
from pinnlab.core.errors import ConfigError, UnknownNameError
from pinnlab.sweep import spec


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_chain_merges_deeply_and_resolves_paths_relative_to_each_file(tmp_path):
    _write(tmp_path / "common" / "narrow.yaml", "base: seed\nmodel:\n  width: 7\noptimizer:\n  momentum: 0.5\n")
    top = _write(tmp_path / "exp" / "run.yaml", "base: ../common/narrow.yaml\nmodel:\n  depth: 4\n")
    cfg = load_config(top, ["optimizer.momentum=0.25"])
    seed = load_config("seed")
    assert (cfg.model.width, cfg.model.depth) == (7, 4)  # one key from each file of the chain
    assert cfg.model.activation == seed.model.activation  # the rest of `model` kept from the preset
    assert cfg.optimizer.momentum == 0.25  # --set applies last
    assert cfg.optimizer.name == seed.optimizer.name


def test_mapping_source_with_base_equals_file_source(tmp_path):
    path = _write(tmp_path / "c.yaml", "base: seed\nmodel:\n  width: 9\n")
    assert load_config({"base": "seed", "model": {"width": 9}}) == load_config(path)


def test_override_of_one_budget_key_clears_the_inherited_other(tmp_path):
    path = _write(tmp_path / "e.yaml", "base: seed\ntraining:\n  epochs: 3\n")
    assert load_config(path).training.epochs == 3
    cfg = load_config(path, ["training.steps=50"])
    assert (cfg.training.steps, cfg.training.epochs) == (50, None)
    child = _write(tmp_path / "s.yaml", "base: e.yaml\ntraining:\n  steps: 8\n")
    assert (load_config(child).training.steps, load_config(child).training.epochs) == (8, None)


def test_steps_and_epochs_in_one_mapping_is_an_error():
    with pytest.raises(ConfigError) as info:
        load_config({"training": {"steps": 10, "epochs": 2}})
    assert info.value.field == "training"
    assert "set one of training.steps and training.epochs, not both (got steps=10, epochs=2)" in str(info.value)


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("model.width=20", "model.width", 20),
        ("optimizer.learning_rate=1e-3", "optimizer.learning_rate", 1e-3),  # YAML 1.1 would say str
        ("optimizer.learning_rate=.5", "optimizer.learning_rate", 0.5),
        ("model.activation=tanh", "model.activation", "tanh"),
        ("model.standardize=true", "model.standardize", True),
        ("training.batch_size=", "training.batch_size", None),
        ("training.batch_size=null", "training.batch_size", None),
        (" loss.weights = {boundary: 2}", "loss.weights", {"boundary": 2}),
        ("name=a=b", "name", "a=b"),  # only the first `=` splits
    ],
)
def test_parse_override_reads_the_value_as_yaml(text, key, value):
    assert parse_override(text) == (key, value)
    assert type(parse_override(text)[1]) is type(value)


@pytest.mark.parametrize("text", ["model.width", "=3", "model..width=3", ".width=3", "model.=3"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="must look like dotted.key=value"):
        parse_override(text)


def test_apply_overrides_creates_nested_mappings_and_leaves_the_input_alone():
    data = {"model": {"width": 3}}
    out = apply_overrides(data, ["loss.weights.boundary=2", ("model.width", 5)])
    assert out == {"model": {"width": 5}, "loss": {"weights": {"boundary": 2}}}
    assert data == {"model": {"width": 3}}


@pytest.mark.parametrize(
    "override, field",
    [
        ("model.width=3.5", "model.width"),  # not an integer
        ("model.width=true", "model.width"),  # a bool is not an integer here
        ("model.standardize=1", "model.standardize"),  # nor an integer a bool
        ("training.seed=-1", "training.seed"),
        ("loss.alpha=1", "loss.alpha"),  # unknown key
    ],
)
def test_override_types_are_strict(override, field):
    with pytest.raises(ConfigError) as info:
        load_config("seed", [override])
    assert info.value.field == field


def test_floats_accept_integers():
    cfg = load_config("seed", ["loss.huber_delta=2", "optimizer.learning_rate=1"])
    assert cfg.loss.huber_delta == 2.0 and cfg.optimizer.learning_rate == 1.0


@pytest.mark.parametrize(
    "override, field, allowed",
    [
        (
            "optimizer.schedule.decay_stesp=5",
            "optimizer.schedule.decay_stesp",
            "allowed keys: decay_rate, decay_steps, name, staircase",
        ),
        (
            "loss.weighting.evry=5",
            "loss.weighting.evry",
            "allowed keys: alpha, causal_chunks, causal_epsilon, every, ntk_estimator, ntk_probes, scheme",
        ),
        ("problem.params.n_points=5", "problem.params.n_points", "allowed keys: anchor_value, constraint"),
    ],
)
def test_unknown_nested_key_names_its_dotted_path_and_the_allowed_keys(override, field, allowed):
    with pytest.raises(ConfigError) as info:
        load_config("seed", [override])
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: unknown key; {allowed}")


# Every config field that holds a catalogue name, with the catalogue that checks it.
NAME_FIELDS = [
    ("model.activation", names.ACTIVATIONS),
    ("model.output_activation", names.ACTIVATIONS),
    ("model.initializer", names.INITIALIZERS),
    ("loss.formulation", names.FORMULATIONS),
    ("loss.formulations.residual", names.FORMULATIONS),
    ("optimizer.name", names.OPTIMIZERS),
    ("optimizer.schedule.name", names.SCHEDULES),
]


@pytest.mark.parametrize("field, catalogue", NAME_FIELDS, ids=[f for f, _ in NAME_FIELDS])
def test_every_name_field_lists_every_valid_name(field, catalogue):
    with pytest.raises(ConfigError) as info:
        load_config("seed", [f"{field}=nosuch"])
    assert info.value.field == field
    assert "'nosuch'" in info.value.message
    for name in catalogue.names():
        assert f"{name}" in info.value.message


@pytest.mark.parametrize("field, catalogue", NAME_FIELDS, ids=[f for f, _ in NAME_FIELDS])
def test_every_catalogue_name_is_accepted(field, catalogue):
    extra = ["loss.weighting.scheme=fixed"]
    for name in catalogue.names():
        cfg = load_config("seed", [f"{field}={name}", *extra])
        assert flatten(cfg.to_dict())[field] == name


def test_unknown_problem_lists_the_registered_problems():
    with pytest.raises(UnknownNameError) as info:
        load_config("seed", ["problem.name=burgers"])
    assert info.value.valid == ["convection1d", "helmholtz2d", "poisson1d", "poisson2d", "seed"]


def test_full_batch_optimizer_refuses_adaptive_weights():
    with pytest.raises(ConfigError, match="with optimizer.name 'lbfgs' use 'fixed'") as info:
        load_config("poisson2d", ["optimizer.name=lbfgs", "loss.weighting.scheme=grad_norm"])
    assert info.value.field == "loss.weighting.scheme"


@pytest.mark.parametrize("preset", preset_names())
def test_presets_validate_and_round_trip(preset):
    cfg = load_config(preset)
    assert load_config(cfg.to_dict()) == cfg == load_config(cfg)
    assert RunConfig.model_validate(cfg.to_dict()) == cfg


def test_configs_are_frozen_and_share_one_strict_base_with_sweep_files():
    cfg = load_config("seed")
    with pytest.raises(pydantic.ValidationError):
        cfg.model.width = 3
    assert issubclass(spec.SweepSpec, StrictModel) and issubclass(spec.ParamSpec, StrictModel)
    assert not hasattr(spec, "_Strict")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
