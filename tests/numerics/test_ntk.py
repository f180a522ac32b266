"""NTK traces and weighting: the vectorised per-point gradients against a naive per-point loop,
λ updated without retracing, the scheme on every preset with more than one loss term (through
``pinnlab run``, recorded in MLflow), and ``pinnlab reproduce ntk --quick`` end to end."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from pinnlab.cli import main
from pinnlab.config import load_config, preset_names
from pinnlab.core.errors import ConfigError
from pinnlab.numerics.models import build_mlp
from pinnlab.numerics.ntk import TermNTK, ntk_lambdas, spectrum
from pinnlab.problems import resolve_problem
from pinnlab.reproduce import STUDIES, reproduce
from pinnlab.training import Trainer
from tests.reproduce.test_reproduce import quick_through_the_cli


def _naive_rows(problem, net, variables, points, term) -> np.ndarray:
    """J one residual entry at a time: full residuals under a tape, one gradient per entry."""
    tensors = {k: tf.constant(v, tf.float64) for k, v in points.items()}
    with tf.GradientTape(persistent=True) as tape:
        values, _ = problem.residuals(net, tensors)
        r = values[term]
        flat = tf.concat([tf.reshape(p, [-1]) for p in (r if isinstance(r, list) else [r])], 0)
        entries = [flat[i] for i in range(int(flat.shape[0]))]
    rows = []
    for e in entries:
        grads = tape.gradient(e, variables)
        rows.append(
            np.concatenate(
                [np.zeros(v.shape).ravel() if g is None else g.numpy().ravel() for g, v in zip(grads, variables)]
            )
        )
    return np.array(rows)


CASES = [
    ("poisson1d", {"n_residual": 7, "n_boundary": 4}),
    ("helmholtz2d", {"n_residual": 5, "n_boundary_per_edge": 3}),  # boundary: 4 parts of one set
    ("convection1d", {"n_residual": 6, "n_initial": 4, "n_boundary": 3}),  # boundary: u(0,t) - u(2π,t)
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def small(request):
    name, params = request.param
    problem = resolve_problem(name, params)
    net = build_mlp(input_dim=len(problem.coords), width=6, depth=2, activation="tanh", dtype="float64", seed=3)
    points = problem.sample(np.random.default_rng(0))
    return problem, net, list(net.trainable_variables), points


def test_traces_and_blocks_match_a_naive_per_point_loop(small):
    problem, net, variables, points = small
    terms = problem.term_names()
    kern = TermNTK(problem, net, variables, points, terms, dtype=tf.float64)
    assert all(kern.layouts[t] is not None for t in terms)
    tensors = {k: tf.constant(v, tf.float64) for k, v in points.items()}
    traces = {t: float(v) for t, v in kern.traces(tensors).items()}
    compiled = tf.function(lambda p: kern.traces(p), autograph=False)
    for term in terms:
        naive = _naive_rows(problem, net, variables, points, term)
        np.testing.assert_allclose(traces[term], (naive**2).sum(), rtol=1e-10)
        np.testing.assert_allclose(float(compiled(tensors)[term]), (naive**2).sum(), rtol=1e-10)
        jac = kern.jacobian(tensors, term).numpy()
        assert jac.shape == naive.shape
        # rows come in group order (a permutation): the spectrum of K = J Jᵀ is the same
        np.testing.assert_allclose(spectrum(jac), spectrum(naive), rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_chunked_exact_trace_and_hutchinson_estimate():
    """On the 1-D case only: chunking and the estimator are problem-independent.  Slow (about 2 CPU
    minutes: every chunk and the 400-probe estimator are traced anew), so left out by default."""
    name, params = CASES[0]
    problem = resolve_problem(name, params)
    net = build_mlp(input_dim=1, width=6, depth=2, activation="tanh", dtype="float64", seed=3)
    variables, points = list(net.trainable_variables), problem.sample(np.random.default_rng(0))
    terms = problem.term_names()
    tensors = {k: tf.constant(v, tf.float64) for k, v in points.items()}
    whole = TermNTK(problem, net, variables, points, terms, dtype=tf.float64)
    exact = whole.traces(tensors)
    # three rows a chunk: several chunks per term, the last one partial
    tiny = TermNTK(problem, net, variables, points, terms, dtype=tf.float64, max_floats=3 * whole.n_params)
    for t, v in tiny.traces(tensors).items():
        np.testing.assert_allclose(float(v), float(exact[t]), rtol=1e-10)
    hutch = TermNTK(problem, net, variables, points, terms, dtype=tf.float64, estimator="hutchinson", probes=400)
    est = tf.function(lambda p, s: hutch.traces(p, s), autograph=False)(tensors, tf.constant([1, 2]))
    for t in terms:
        assert float(est[t]) == pytest.approx(float(exact[t]), rel=0.25), t


def test_lambdas_use_mean_traces():
    lam = ntk_lambdas({"residual": tf.constant(300.0), "boundary": tf.constant(1.0)}, {"residual": 100, "boundary": 1})
    assert float(lam["residual"]) == pytest.approx(4 / 3) and float(lam["boundary"]) == pytest.approx(4.0)


def test_scheme_defaults_and_errors():
    ntk = load_config("poisson1d", ["loss.weighting.scheme=ntk"]).loss.weighting
    assert (ntk.every, ntk.alpha, ntk.ntk_estimator, ntk.ntk_probes) == (100, 0.0, "exact", 8)
    gn = load_config("poisson1d", ["loss.weighting.scheme=grad_norm"]).loss.weighting
    assert (gn.every, gn.alpha) == (10, 0.9)
    mine = load_config("poisson1d", ["loss.weighting.scheme=ntk", "loss.weighting.alpha=0.5"]).loss.weighting
    assert mine.alpha == 0.5 and mine.every == 100
    with pytest.raises(ConfigError, match="loss.weighting.ntk_estimator"):
        load_config("poisson1d", ["loss.weighting.ntk_estimator=svd"])


def test_lambda_updates_never_retrace_and_are_logged():
    cfg = load_config(
        "poisson1d",
        [
            "problem.params.n_residual=16",
            "problem.params.n_boundary=4",
            "model.width=16",
            "training.steps=31",
            "training.jit_compile=false",
            "loss.weighting.scheme=ntk",
            "loss.weighting.every=5",
            "diagnostics.every=10",
            "diagnostics.ntk_trace=true",
            "optimizer.name=adam",
            "optimizer.learning_rate=1e-2",
        ],
    )
    trainer = Trainer(cfg)
    result = trainer.fit()
    assert trainer.ntk.calls >= 7 + 4  # 7 updates (steps 0, 5, ..., 30) and 4 diagnostics
    assert trainer.ntk._update.experimental_get_tracing_count() == 1
    assert trainer.ntk._trace.experimental_get_tracing_count() == 1
    h = result.history
    lam = h["lambda/boundary"].to_numpy()
    assert np.isfinite(lam).all() and len(set(lam[::5].round(6))) > 1  # changed between updates
    assert (lam[1:5] == lam[0]).all()  # constant between updates
    for col in ("ntk_trace/residual", "ntk_trace/boundary"):
        assert h[col].dropna().index.tolist() == [0, 10, 20, 30]
    # λ at step 0 is the formula on the initial traces (same points, alpha 0)
    tr0 = h.loc[0, ["ntk_trace/residual", "ntk_trace/boundary"]].to_numpy()
    means = tr0 / np.array([16, 4])
    assert h.loc[0, "lambda/boundary"] == pytest.approx(means.sum() / means[1], rel=1e-4)


def test_ntk_weighting_logs_the_traces_of_its_updates_without_the_flag():
    """`loss.weighting.scheme: ntk` without `diagnostics.ntk_trace` logs the traces its λ updates
    computed, on the diagnostics steps that are update steps, and λ follows the same formula."""
    cfg = load_config(
        "poisson1d",
        [
            "problem.params.n_residual=16",
            "problem.params.n_boundary=4",
            "model.width=16",
            "training.steps=31",
            "training.jit_compile=false",
            "loss.weighting.scheme=ntk",
            "loss.weighting.every=5",
            "diagnostics.every=10",
            "optimizer.name=adam",
            "optimizer.learning_rate=1e-2",
        ],
    )
    trainer = Trainer(cfg)
    h = trainer.fit().history
    assert trainer.ntk._trace.experimental_get_tracing_count() == 0  # no exact traces computed
    for col in ("ntk_trace/residual", "ntk_trace/boundary"):
        assert h[col].dropna().index.tolist() == [0, 10, 20, 30]
    for step in (0, 10, 20, 30):
        means = h.loc[step, ["ntk_trace/residual", "ntk_trace/boundary"]].to_numpy() / np.array([16, 4])
        assert h.loc[step, "lambda/boundary"] == pytest.approx(means.sum() / means[1], rel=1e-4)
    from pinnlab.sweep.metrics import objective_metrics

    assert "ntk_trace/residual" in objective_metrics(cfg) and "ntk_trace/boundary" in objective_metrics(cfg)


MULTI_TERM = [
    p
    for p in preset_names()
    if len(resolve_problem(load_config(p).problem.name, load_config(p).problem.params).term_names()) > 1
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("ntk")
    return d, f"sqlite:///{d}/mlflow.db"


@pytest.mark.parametrize("preset", MULTI_TERM)
def test_pinnlab_run_with_ntk_on_every_multi_term_preset(preset, store, capsys):
    _, uri = store
    argv = [
        "run",
        preset,
        "--set",
        "training.steps=3",
        "--set",
        "loss.weighting.scheme=ntk",
        "--set",
        "loss.weighting.every=2",
        "--set",
        "diagnostics.every=2",
        "--set",
        "diagnostics.ntk_trace=true",
        "--set",
        "training.jit_compile=false",
        "--json",
        "--quiet",
        "--tracking-uri",
        uri,
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(summary["mlflow_run_id"])
    terms = resolve_problem(load_config(preset).problem.name, load_config(preset).problem.params).term_names()
    for t in terms:
        assert f"ntk_trace/{t}" in run.data.metrics and run.data.metrics[f"ntk_trace/{t}"] > 0
        assert f"lambda/{t}" in run.data.metrics


def test_multi_term_presets_cover_the_problems():
    assert {"poisson1d", "poisson2d", "helmholtz2d", "convection1d"} <= set(MULTI_TERM)


# ----------------------------------------------------------------------------------- reproduction
@pytest.fixture(scope="module")
def ntk_quick(store):
    """Through the CLI, as a user runs it: ``pinnlab reproduce ntk --quick --json``."""
    d, uri = store
    return quick_through_the_cli("ntk", d / "ntk", uri)


@pytest.mark.slow  # the quick study trains for about 25 s; every reproduction's quick variant is a slow test
def test_ntk_quick_reproduction_end_to_end(ntk_quick, store):
    _, uri = store
    assert "ntk" in STUDIES
    assert [c["part"] for c in ntk_quick["claims"]] == ["a", "b", "c", "d"]
    for c in ntk_quick["claims"]:
        assert c["reproduced"] in ("yes", "partly", "no") and c["ours"] and c["criterion"]
    claim_c = next(c for c in ntk_quick["claims"] if c["part"] == "c")
    assert claim_c["reproduced"] == "yes"  # the imbalance is there at initialisation, whatever the budget
    runs = ntk_quick["parts"]["runs"]
    assert {(r["optimizer"], r["method"]) for r in runs} == {
        ("gd", "plain"),
        ("gd", "ntk"),
        ("adam", "plain"),
        ("adam", "ntk"),
    }
    ntk_gd = next(r for r in runs if r["optimizer"] == "gd" and r["method"] == "ntk")
    assert ntk_gd["lambda_boundary_final"] > 10 and 1 < ntk_gd["lambda_residual_final"] < 1.1
    spectra = ntk_quick["parts"]["spectra"]
    assert set(spectra) == {"plain, init", "plain, end", "ntk, init", "ntk, end"}
    assert [f.rsplit("/", 1)[-1] for f in ntk_quick["figures"]] == ["ntk_training.png", "ntk_spectrum.png"]
    for f in ntk_quick["figures"]:
        assert open(f, "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"
    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = client.get_run(ntk_quick["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert all("ntk_trace/residual" in c.data.metrics for c in children)


def test_reproduce_quick_via_api_lists_ntk():
    with pytest.raises(ConfigError, match="ntk"):
        reproduce("nope", track=False, progress=False)
