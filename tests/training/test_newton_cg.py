"""Newton–CG (pinnlab.training.newton_cg): the Nyström sketch, preconditioned CG and the Armijo
search against dense matrices; the loop on a small problem; three-phase chains."""

from __future__ import annotations

import numpy as np
import pytest

from pinnlab.config import load_config
from pinnlab.core.errors import ConfigError
from pinnlab.core.outcomes import Outcome
from pinnlab.training import train
from pinnlab.training.newton_cg import ARMIJO_DECREASE, armijo, nystrom, pcg

SMALL = [
    "model.width=16",
    "model.depth=2",
    "training.jit_compile=false",
    "diagnostics.sharpness=false",
    "problem.params.n_residual=256",
    "problem.params.n_boundary=64",
]


def _spd(n: int, eigenvalues, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (q * np.asarray(eigenvalues)) @ q.T


def test_nystrom_recovers_a_low_rank_matrix_and_the_top_eigenvalues():
    rng = np.random.default_rng(1)
    a = _spd(40, [50.0, 20.0, 5.0, 1.0] + [0.0] * 36)
    ny = nystrom(lambda v: a @ v, 40, 8, rng)
    np.testing.assert_allclose((ny.U * ny.S) @ ny.U.T, a, atol=1e-4)
    np.testing.assert_allclose(ny.S[:4], [50.0, 20.0, 5.0, 1.0], atol=1e-4)  # the shift: float32 eps × ‖Y‖
    # an indefinite operator: shifted until the core is positive definite, eigenvalues clipped at 0
    b = _spd(30, np.linspace(-3, 10, 30))
    assert (nystrom(lambda v: b @ v, 30, 6, rng).S >= 0).all()


def test_pcg_solves_the_damped_system_and_the_preconditioner_needs_fewer_iterations():
    rng = np.random.default_rng(2)
    n, mu = 60, 1e-3
    a = _spd(n, np.logspace(-3, 3, n))
    b = rng.standard_normal(n)
    exact = np.linalg.solve(a + mu * np.eye(n), b)
    plain = pcg(lambda v: a @ v, b, np.zeros(n), mu, None, 1e-10, 500)
    pre = pcg(lambda v: a @ v, b, np.zeros(n), mu, nystrom(lambda v: a @ v, n, 20, rng), 1e-10, 500)
    for x, _iters, rel in (plain, pre):
        assert rel <= 1e-10
        np.testing.assert_allclose(x, exact, rtol=1e-6, atol=1e-8)
    assert pre[1] < plain[1]
    # a warm start at the solution needs no iteration
    assert pcg(lambda v: a @ v, b, exact, mu, None, 1e-8, 50)[1] == 0


def test_pcg_stops_at_negative_curvature_with_the_iterate_so_far():
    a = np.diag([-1.0, 2.0])
    x, iters, _ = pcg(lambda v: a @ v, np.array([1.0, 0.0]), np.zeros(2), 1e-3, None, 1e-12, 10)
    assert iters == 0 and not x.any()


def test_armijo_takes_the_first_halving_with_sufficient_decrease():
    f = lambda t: (1.0 - t * 3.0) ** 2  # noqa: E731  f(θ − t d) with θ = 1, d = 3, g = 2
    t = armijo(f, 1.0, slope=6.0)
    assert t == 0.5 and f(t) <= 1.0 - ARMIJO_DECREASE * t * 6.0
    assert armijo(lambda t: 2.0, 1.0, slope=1.0) == 0.0  # no decrease anywhere: no step
    assert armijo(lambda t: np.nan if t > 0.2 else 0.0, 1.0, slope=1.0) == 0.125  # non-finite trials rejected


def test_newton_cg_run_never_raises_the_loss_and_logs_its_steps():
    r = train(
        "poisson2d",
        [
            *SMALL,
            "optimizer.name=newton_cg",
            "training.steps=12",
            "diagnostics.every=4",
            "optimizer.newton_rank=10",
            "optimizer.newton_cg_iters=20",
        ],
    )
    h = r.history
    assert r.outcome == Outcome.STABLE and len(h) == 12
    losses = h["loss/total"].to_numpy()
    assert (np.diff(losses) <= 1e-6 * losses[:-1]).all()  # Armijo: every accepted iterate lowers the loss
    assert losses[-1] < r.initial_loss / 10
    rows = h["newton/step_size"].dropna()
    assert list(rows.index) == [0, 4, 8] and (rows > 0).all()
    assert (h["newton/cg_iters"].dropna() <= 20).all()


def test_a_three_phase_chain_keeps_one_history_with_its_phases():
    r = train(
        "poisson2d",
        [
            *SMALL,
            "training.steps=40",
            "optimizer.then=[lbfgs, newton_cg]",
            "optimizer.switch_step=[20, 30]",
            "optimizer.newton_rank=8",
            "optimizer.newton_cg_iters=10",
        ],
    )
    h = r.history
    assert r.steps_run == len(h) == 40 and r.outcome == Outcome.STABLE
    np.testing.assert_array_equal(h["optimizer/phase"].to_numpy(), np.repeat([0.0, 1.0, 2.0], [20, 10, 10]))
    assert h["loss/total"].iloc[-1] < h["loss/total"].iloc[19]


def test_a_phase_that_stops_early_hands_over_at_once_and_the_next_keeps_its_rows():
    # a loose ftol makes L-BFGS-B stop after a few of its 10 planned iterations
    r = train(
        "poisson2d",
        [
            *SMALL,
            "training.steps=40",
            "optimizer.then=[lbfgs, newton_cg]",
            "optimizer.lbfgs_ftol=0.5",
            "optimizer.switch_step=[20, 30]",
            "optimizer.newton_rank=8",
            "optimizer.newton_cg_iters=10",
        ],
    )
    phase = r.history["optimizer/phase"].to_numpy()
    lbfgs_rows = int((phase == 1).sum())
    assert 0 <= lbfgs_rows < 10 and (phase == 2).sum() == 10  # Newton-CG still gets its 10 rows
    assert r.steps_run == len(phase) == 30 + lbfgs_rows
    np.testing.assert_array_equal(phase, np.repeat([0.0, 1.0, 2.0], [20, lbfgs_rows, 10]))  # no gap
    assert np.isfinite(r.history["loss/total"]).all()


@pytest.mark.parametrize(
    "over,field",
    [
        (["optimizer.then=[lbfgs, newton_cg]", "optimizer.switch_step=10"], "optimizer.switch_step"),
        (["optimizer.then=[lbfgs, newton_cg]", "optimizer.switch_step=[20, 10]"], "optimizer.switch_step"),
        (["optimizer.then=[lbfgs, lbfgs]", "optimizer.switch_step=[10, 20]"], "optimizer.then"),
        (["optimizer.then=[newton_cg, adam]", "optimizer.switch_step=[10, 20]"], "optimizer.then"),
        (["optimizer.then=[lbfgs, newton_cg]", "optimizer.switch_step=[10, 200]"], "optimizer.switch_step"),
        (["optimizer.name=newton_cg", "training.replicates=2"], "training.replicates"),
        (["optimizer.name=newton_cg", "loss.weighting.scheme=ntk"], "loss.weighting.scheme"),
        (["optimizer.name=newton_cg", "optimizer.newton_mu=0"], "optimizer.newton_mu"),
    ],
)
def test_what_a_newton_cg_run_cannot_be(over, field):
    with pytest.raises(ConfigError) as e:
        load_config("poisson2d", ["training.steps=200", *over])
    assert str(e.value).startswith(f"{field}: "), str(e.value)


@pytest.mark.slow
def test_the_quick_optimizer_reproduction_orders_the_arms_on_every_seed(tmp_path):
    """``pinnlab reproduce optimizers --quick`` (about 3.5 min on 2 cores): docs/reproductions.md, `optimizers`."""
    from pinnlab.reproduce import reproduce

    result = reproduce("optimizers", quick=True, out=tmp_path / "opt", track=False, progress=False)
    claims = {c.part: c for c in result.claims}
    assert claims["ordering"].reproduced == "yes", claims["ordering"].ours
    runs = result.parts["runs"]
    assert {(r["seed"], r["arm"]) for r in runs} == {
        (s, a) for s in (0, 1) for a in ("adam", "adam+lbfgs", "adam+lbfgs+nncg")
    }
    assert all(r["newton_step_size_median"] > 0 for r in runs if r["arm"] == "adam+lbfgs+nncg")
    assert [f.rsplit("/", 1)[-1] for f in result.figures] == ["optimizers_loss.png"]
