"""Reproductions: the quick variant of every study end to end (real training, real MLflow SQLite
store), what each one measures, and the pieces they are built from.

Each quick study runs once per module (fixtures below); the tests read its result, its files and
its MLflow runs.  ``convection`` is in tests/reproduce/test_reproduce_convection.py, so that the two test
processes can run the seed and convection studies at the same time.  The full variants (minutes to an hour) are documented in docs/reproductions.md.
"""

from __future__ import annotations

import contextlib
import io
import json

import mlflow
import numpy as np
import pytest

from pinnlab.cli import main
from pinnlab.reproduce import reproduce
from pinnlab.reproduce.base import Claim, StudyResult, agreement, count_span, fmt, span
from pinnlab.tracking import metric_key


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("reproductions")
    return d, f"sqlite:///{d}/mlflow.db"


@pytest.fixture(scope="module")
def seed_quick(store):
    d, uri = store
    return reproduce("seed", quick=True, out=d / "seed", tracking_uri=uri, progress=False)


@pytest.fixture(scope="module")
def helmholtz_quick(store):
    d, uri = store
    return reproduce("helmholtz", quick=True, out=d / "helm", tracking_uri=uri, progress=False)


def quick_through_the_cli(study: str, out, uri: str) -> dict:
    """``pinnlab reproduce STUDY --quick --json`` as a user runs it; its JSON summary."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["reproduce", study, "--quick", "--json", "--quiet", "--out", str(out), "--tracking-uri", uri])
    assert code == 0
    return json.loads(buf.getvalue())


def claims(result, part):
    rows = result["claims"] if isinstance(result, dict) else [c.to_dict() for c in result.claims]
    return [c for c in rows if c["part"] == part]


# ----------------------------------------------------------------------------------- seed
@pytest.mark.slow  # the seed study's quick variant: 40-90 s in the suite
def test_seed_a_b_c_diverge_and_d_separates_stable_from_meaningful(seed_quick):
    for part in "abc":
        found = claims(seed_quick, part)
        assert found, part
    # the divergence claims of a, b and c hold on every seed
    assert claims(seed_quick, "a")[0]["reproduced"] == "yes"
    assert claims(seed_quick, "b")[0]["reproduced"] == "yes"
    assert claims(seed_quick, "c")[1]["reproduced"] == "yes"
    for row in seed_quick.parts["a"]["runs"] + seed_quick.parts["b"]["runs"]:
        assert row["outcome"] in ("nan", "blowup", "unbounded")
        assert row["growth_rate"] > 1e-3  # exponential: ln||W|| rises ~0.005 per step
    remedies = {r["remedy"].split(" (")[0]: r for r in seed_quick.parts["d"]["remedies"]}
    assert set(remedies) >= {"raw loss + L2 weight decay 1e-2", "squared residual", "squared residual + u(0,0)=1"}
    fixed = next(r for name, r in remedies.items() if "Dirichlet" in name)
    assert fixed["stable"] == "2/2" and fixed["meaningful"] == "2/2"
    assert remedies["squared residual"]["stable"] == "2/2"
    assert remedies["squared residual"]["meaningful"] == "0/2"  # stable, but a near-constant u
    assert remedies["raw loss + L2 weight decay 1e-2"]["stable"] == "0/2"
    # the printed table has both columns
    table = seed_quick.table()
    assert "stable" in table and "meaningful" in table and "claim" in table


@pytest.mark.slow  # the seed study's quick variant: 40-90 s in the suite
def test_seed_b_measures_signs_and_bias_gradients(seed_quick):
    b = seed_quick.parts["b"]
    for row in b["runs"]:
        signs = row["signs_end"]
        assert set(signs["products"]) == {"x", "y"}
        assert len(signs["products"]["x"]) == 5 and set(signs["products"]["x"]) <= {"+", "-"}
        assert 0 <= signs["negative_share"]["x"] <= 1
    ratios = b["bias_over_kernel_grad_first_50_steps"]
    assert len(ratios["seed-answer"]) == len(ratios["seed"]) == 2
    assert all(0 < r < 1 for r in ratios["seed-answer"] + ratios["seed"])


@pytest.mark.slow  # the seed study's quick variant: 40-90 s in the suite
def test_seed_c_literal_loss_differs_from_the_intended_one(seed_quick):
    for row in seed_quick.parts["c"]["runs"]:
        assert row["literal_at_init"] != pytest.approx(row["intended_at_init"], rel=1e-2)
        assert row["mean_abs_u_xy_over_u_yy"] > 0.05  # the mixed term the literal "u_yy" adds
        assert row["literal"]["outcome"] in ("nan", "blowup", "unbounded")


@pytest.mark.slow  # the seed study's quick variant: 40-90 s in the suite
def test_seed_writes_figures_result_and_mlflow_runs(seed_quick, store):
    _, uri = store
    for f in seed_quick.figures:
        data = open(f, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    saved = json.loads(seed_quick.out and open(f"{seed_quick.out}/result.json").read())
    assert saved["claims"] == seed_quick.to_dict()["claims"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = client.get_run(seed_quick.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pinnlab.kind"] == "reproduction"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == len(seed_quick.runs)
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["part"] for c in children} == {"a", "b", "c", "d"}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"result.json", "claims.txt", "figures"} <= artifacts
    # the literal loss's derivative "u_xy+u_yy" is logged under an MLflow-valid key
    literal = [c for c in children if c.data.tags["part"] == "c"]
    assert any("deriv/u_xy_u_yy" in c.data.metrics for c in literal)


# ----------------------------------------------------------------------------------- helmholtz
@pytest.mark.slow  # four runs of 2,000 steps, two of them on the modified MLP: about 50 s
def test_helmholtz_quick_annealing_beats_plain_with_bounded_lambda(helmholtz_quick):
    runs = {r["method"]: r for r in helmholtz_quick.parts["runs"]}
    assert runs["annealing"]["error"] < runs["plain"]["error"]
    assert runs["annealing"]["lambda_bounded"] is True
    assert np.isfinite(runs["annealing"]["lambda_max"])
    ratios = runs["plain"]["grad_ratio_step0"]
    assert set(ratios) == {"dense_1/kernel", "dense_2/kernel", "dense_3/kernel", "dense_4/kernel"}
    assert all(r > 1 for r in ratios.values())  # boundary gradients are the smaller ones
    assert any(f.endswith("helmholtz_gradients.png") for f in helmholtz_quick.figures)
    # the paper's four models, M3 and M4 on the modified MLP (its encoders among the kernels)
    assert {r["model"]: r["method"] for r in runs.values()} == {
        "M1": "plain",
        "M2": "annealing",
        "M3": "modified",
        "M4": "modified+annealing",
    }
    assert "encoder_1/kernel" in runs["modified"]["grad_ratio_step0"]
    assert runs["modified+annealing"]["lambda_bounded"] is True
    assert {c.part for c in helmholtz_quick.claims} >= {"accuracy", "architecture", "lambda", "pathology"}


# ----------------------------------------------------------------------------------- pieces
def test_unknown_study_and_bad_out_are_one_line_errors(capsys, tmp_path):
    assert main(["reproduce", "convecton"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "pinnlab reproduce: error: NAME: 'convecton' is not one of causal, convection, helmholtz, ntk, optimizers, seed"
    )
    afile = tmp_path / "f"
    afile.write_text("x")
    assert main(["reproduce", "seed", "--quick", "--out", str(afile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "not a directory" in err[0]


def test_verdicts_are_computed_from_criteria():
    assert agreement(True) == "yes" and agreement(False) == "no" and agreement(False, partly=True) == "partly"
    assert agreement(None) == "n/a"
    assert span([3, 1, 2]) == "1–3" and span([None, float("nan")]) == "-" and span([0.5, 0.5]) == "0.5"
    assert fmt(0.0034) == "3.4e-03" and fmt(12345) == "12,345" and fmt(None) == "-"
    # a run that never reached the step is counted, not silently dropped from the span
    assert count_span([None, 4669, 7336]) == "2/3 seeds, at steps 4,669–7,336"
    assert count_span([None]) == "0/1 seeds"
    r = StudyResult("x", "X", "src", quick=True, claims=[Claim("a", "c", "s", "o", agreement(False))])
    assert "| no" in r.table() and r.to_dict()["claims"][0]["reproduced"] == "no"


def test_metric_keys_are_made_valid_for_mlflow():
    assert metric_key("deriv/u_xy+u_yy") == "deriv/u_xy_u_yy"
    assert metric_key("grad_norm/dense_1/kernel") == "grad_norm/dense_1/kernel"
