"""The registry, and the contract between the TensorFlow-free catalogue (:mod:`pinnlab.core.names`) and
the implementation modules: the same names on both sides, entry by entry, and metadata that is
true to the implementation (a formulation said to be bounded below is)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from pinnlab.config import OptimizerConfig
from pinnlab.core import names
from pinnlab.core.errors import UnknownNameError
from pinnlab.core.registry import Registry
from pinnlab.numerics import losses, models, optimizers

# ------------------------------------------------------------------------------------------
# Registry


def test_register_get_and_sorted_names():
    reg: Registry[int] = Registry("thing")
    reg.register("b", 2)

    @reg.register("a")
    def a():
        return 1

    assert reg.get("a") is a and reg.get("b") == 2
    assert reg.names() == ["a", "b"] == list(reg)
    assert reg.items() == [("a", a), ("b", 2)]
    assert "a" in reg and "c" not in reg


def test_duplicate_name_raises():
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        reg.register("a", 2)


def test_miss_lists_valid_names_and_field():
    reg: Registry[int] = Registry("thing")
    reg.register("beta", 2)
    reg.register("alpha", 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gamma", "x.kind")
    err = info.value
    assert str(err) == "x.kind: 'gamma' is not one of alpha, beta (unknown thing)"
    assert (err.kind, err.name, err.valid, err.field) == ("thing", "gamma", ["alpha", "beta"], "x.kind")
    assert isinstance(err, KeyError)  # `TABLE[name]`-style callers still catch it


def test_import_path_only_when_allowed():
    assert Registry("thing", allow_import=True).get("json:dumps") is json.dumps
    assert "json:dumps" in Registry("thing", allow_import=True)
    with pytest.raises(UnknownNameError):
        Registry("thing").get("json:dumps")
    assert "json:dumps" not in Registry("thing")


@pytest.mark.parametrize(
    "path, hint",
    [
        ("nosuch.module:X", "an importable module"),
        ("json:nosuch", "an attribute of json"),
        (":X", "package.module:Name"),
    ],
)
def test_bad_import_path_says_why(path, hint):
    with pytest.raises(UnknownNameError, match=hint) as info:
        Registry("problem", allow_import=True).get(path, "problem.name")
    assert info.value.field == "problem.name"


# ------------------------------------------------------------------------------------------
# Catalogue <-> implementations

PAIRS = {
    "activations": (names.ACTIVATIONS, models.ACTIVATIONS),
    "initializers": (names.INITIALIZERS, models.INITIALIZERS),
    "formulations": (names.FORMULATIONS, losses.FORMULATIONS),
    "optimizers": (names.OPTIMIZERS, optimizers.OPTIMIZERS),
    "schedules": (names.SCHEDULES, optimizers.SCHEDULES),
}
ENTRIES = [(kind, name) for kind, (cat, impl) in PAIRS.items() for name in sorted(set(cat) | set(impl))]


@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_catalogue_and_implementation_list_the_same_name(kind, name):
    catalogue, implementation = PAIRS[kind]
    assert name in catalogue, f"{name!r} is implemented but missing from pinnlab.core.names"
    assert name in implementation, f"{name!r} is in pinnlab.core.names but has no implementation"
    assert catalogue.kind == implementation.kind  # the same words in "unknown <kind>"


@pytest.mark.parametrize("name", names.ACTIVATIONS.names())
def test_activation_carries_catalogue_metadata_and_builds(name):
    act = models.ACTIVATIONS.get(name)
    info = names.ACTIVATIONS.get(name)
    assert (act.name, act.vanishes_from, act.note) == (info.name, info.vanishes_from, info.note)
    assert [act.degenerate_for(k) for k in range(4)] == [info.degenerate_for(k) for k in range(4)]
    net = models.build_mlp(input_dim=2, width=3, depth=1, activation=name, output_activation=name)
    assert net(np.zeros((4, 2), np.float32)).shape == (4, 1)


@pytest.mark.parametrize("name", names.INITIALIZERS.names())
def test_initializer_builds(name):
    values = models.INITIALIZERS.get(name)(seed=0)((3, 2))
    assert values.shape == (3, 2)


@pytest.mark.parametrize("name", names.OPTIMIZERS.names())
def test_only_the_full_batch_optimizer_has_no_keras_builder(name):
    built = optimizers.build_optimizer(OptimizerConfig(name=name))
    assert (built is None) is names.OPTIMIZERS.get(name).full_batch


@pytest.mark.parametrize("name", names.SCHEDULES.names())
def test_schedule_gives_the_configured_rate_at_step_zero(name):
    cfg = OptimizerConfig(learning_rate=0.01, schedule={"name": name})
    lr = optimizers.learning_rate(cfg)
    assert float(lr(0) if callable(lr) else lr) == pytest.approx(0.01)


def test_the_full_batch_optimizers_are_the_second_order_ones():
    assert [n for n, info in names.OPTIMIZERS.items() if info.full_batch] == ["lbfgs", "newton_cg"]


# Residuals of every sign and scale, the extremes included.
R = tf.constant(np.concatenate([np.linspace(-1e4, 1e4, 101), [-1e30, 0.0, 1e30]])[:, None], tf.float32)


@pytest.mark.parametrize("name", names.FORMULATIONS.names())
@pytest.mark.parametrize("delta", [0.1, 1.0, 10.0])
def test_bounded_below_is_true_to_the_values(name, delta):
    fn = losses.FORMULATIONS.get(name)
    if names.FORMULATIONS.get(name).bounded_below:
        # bounded by 0, reached at r = 0, whatever the residual
        assert float(fn(tf.zeros((3, 1)), delta)) == 0.0
        for k in range(len(R)):
            assert float(fn(R[k : k + 1], delta)) >= 0.0
        assert float(fn(R, delta)) >= 0.0
    else:
        # below any bound: a constant residual of -2·bound gives a loss under -bound
        for bound in (1.0, 1e3, 1e6, 1e30):
            r = tf.fill((5, 1), tf.constant(-2 * bound, tf.float32))
            assert float(fn(r, delta)) < -bound
