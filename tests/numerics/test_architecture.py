"""``model.architecture: modified_mlp`` (pinnlab.numerics.models): the gated forward pass as the paper writes it,
its variables named like an MLP's plus two encoders, and what it cannot be combined with."""

from __future__ import annotations

import numpy as np
import pytest

from pinnlab.config import load_config
from pinnlab.core.errors import ConfigError
from pinnlab.numerics.models import build_mlp
from pinnlab.training import build_trainer


def test_the_forward_pass_is_the_gated_formula():
    net = build_mlp(
        input_dim=2, width=8, depth=2, activation="tanh", dtype="float64", seed=4, architecture="modified_mlp"
    )
    w = {("/".join(v.path.split("/")[-2:])): v.numpy() for v in net.trainable_variables}
    x = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    u = np.tanh(x @ w["encoder_1/kernel"] + w["encoder_1/bias"])
    v = np.tanh(x @ w["encoder_2/kernel"] + w["encoder_2/bias"])
    h = x
    for i in (1, 2):
        z = np.tanh(h @ w[f"dense_{i}/kernel"] + w[f"dense_{i}/bias"])
        h = z * u + (1 - z) * v
    want = h @ w["dense_3/kernel"] + w["dense_3/bias"]
    np.testing.assert_allclose(net(x).numpy(), want, rtol=1e-12)
    assert not np.allclose(w["encoder_1/kernel"], w["encoder_2/kernel"])  # each encoder its own seed


def test_a_modified_mlp_run_logs_its_encoders_and_trains():
    cfg = load_config(
        "poisson2d",
        [
            "model.architecture=modified_mlp",
            "training.steps=60",
            "diagnostics.every=20",
            "model.width=16",
            "model.depth=2",
            "diagnostics.sharpness=false",
            "problem.params.n_residual=256",
            "optimizer.learning_rate=0.01",
        ],
    )
    trainer = build_trainer(cfg)
    assert {"encoder_1/kernel", "encoder_2/bias", "dense_3/kernel"} <= set(trainer.var_names)
    r = trainer.fit()
    assert np.isfinite(r.final_loss) and r.final_loss < r.initial_loss
    assert r.history["weight_norm/encoder_1/kernel"].notna().sum() == 3


@pytest.mark.parametrize(
    "over,field",
    [
        (["model.architecture=modified_mlp", "training.replicates=2"], "training.replicates"),
        (["model.architecture=resnet"], "model.architecture"),
    ],
)
def test_what_an_architecture_cannot_be(over, field):
    with pytest.raises(ConfigError) as e:
        load_config("helmholtz2d", over)
    assert str(e.value).startswith(f"{field}: "), str(e.value)
