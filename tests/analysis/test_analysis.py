"""Analysis of a real study: frames joined across Optuna and MLflow, the report, the dashboard file.

One tiny grid sweep (4 trials of 60 steps: learning rate 1e-3 stays finite, 1e19 goes NaN at step
1; width 5 or 10) is run once per test session through ``pinnlab sweep`` into real stores laid out
as the CLI's defaults would be (``<project>/pinnlab-runs/optuna.journal`` and ``mlflow.db``), with
the study name of the README's sweep, so README commands can run as written in ``<project>``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from pinnlab.analysis import (
    build_report,
    divergence_by_factor,
    divergence_importance,
    factor_levels,
    history_frame,
    load_study_data,
    stable_ranking,
    trials_frame,
)
from pinnlab.cli import main
from pinnlab.core.errors import ConfigError, StoreError
from pinnlab.core.outcomes import DIVERGENT as _DIVERGENT
from pinnlab.training.divergence import growth_rate

# the dashboard's sections in page order (their ids)
VIEWS = [
    "heatmap",
    "trajectories",
    "nan-onset",
    "parallel",
    "grad-terms",
    "causes",
    "survival",
    "aligned",
    "boundary-plane",
]
STUDY = "seed_divergence"  # the README's sweep: its report/dashboard commands run as written here
TINY = {
    "base": "seed",
    "overrides": {"training.steps": 60, "diagnostics.every": 20, "divergence.heldout_points": 256},
    "space": {
        "optimizer.learning_rate": {"choices": [1.0e-3, 1.0e19]},  # 1e19 goes NaN at step 1
        "model.width": {"choices": [5, 10]},
    },
    "objective": {"metric": "final_loss", "direction": "minimize"},
    "sampler": {"name": "grid"},
    "n_trials": 4,
}
DIVERGENT = {str(o) for o in _DIVERGENT}


def build_study(base: Path) -> dict:
    """Run the tiny sweep once per session (cached in the session's base temp dir)."""
    done = base / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    store = base / "pinnlab-runs"
    store.mkdir(parents=True, exist_ok=True)
    (base / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    info = {
        "project": str(base),
        "storage": f"journal:{store / 'optuna.journal'}",
        "journal": str(store / "optuna.journal"),
        "tracking_uri": f"sqlite:///{(store / 'mlflow.db').as_posix()}",
    }
    argv = [
        "sweep",
        str(base / "tiny.yaml"),
        "--study-name",
        STUDY,
        "--storage",
        info["storage"],
        "--tracking-uri",
        info["tracking_uri"],
        "--json",
        "--quiet",
    ]
    assert main(argv) == 0
    done.write_text(json.dumps(info))
    return info


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> dict:
    return build_study(tmp_path_factory.getbasetemp() / "analysis-study")


@pytest.fixture(scope="module")
def data(study):
    return load_study_data(STUDY, study["storage"], study["tracking_uri"])


def optuna_trials(study) -> list:
    """The trials read straight from the Optuna storage (no pinnlab code in between)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(study["journal"]))
    return optuna.load_study(study_name=STUDY, storage=storage).get_trials()


# ------------------------------------------------------------------------------------ frames
def test_trials_frame_joins_optuna_and_mlflow(study):
    trials = trials_frame(STUDY, study["storage"], study["tracking_uri"])
    assert len(trials) == 4 and list(trials["trial"]) == [0, 1, 2, 3]
    for col in [
        "state",
        "optimizer.learning_rate",
        "model.width",
        "outcome",
        "nan_onset_step",
        "first_nonfinite",
        "divergence_step",
        "steps_run",
        "value",
        "final/loss/total",
        "mlflow_run_id",
    ]:
        assert col in trials.columns, col
    client = mlflow.MlflowClient(tracking_uri=study["tracking_uri"])
    by_number = {t.number: t for t in optuna_trials(study)}
    for row in trials.to_dict("records"):
        t = by_number[row["trial"]]
        lr = row["optimizer.learning_rate"]
        assert lr == t.params["optimizer.learning_rate"] and row["model.width"] == t.params["model.width"]
        assert row["outcome"] == t.user_attrs["outcome"] == ("nan" if lr > 1 else "stable")
        assert row["state"] == t.state.name
        assert row["mlflow_run_id"] == t.user_attrs["mlflow_run_id"]
        run = client.get_run(row["mlflow_run_id"])
        assert run.data.tags["outcome"] == row["outcome"] and run.data.tags["trial"] == str(row["trial"])
        assert row["run_status"] == "FINISHED"
        assert row["final/loss/total"] == pytest.approx(run.data.metrics["loss/total"])
        if lr > 1:
            assert row["nan_onset_step"] == 1 and row["first_nonfinite"].startswith("grad/")
            assert row["diverged"] is True and math.isnan(row["value"])
        else:
            assert pd.isna(row["nan_onset_step"]) and row["diverged"] is False
            assert row["steps_run"] == 60 and row["value"] == pytest.approx(t.value)
            assert row["final_loss"] == pytest.approx(t.user_attrs["final_loss"])


def test_history_frame_is_long_and_matches_mlflow(study):
    hist = history_frame(STUDY, study["storage"], study["tracking_uri"])
    assert list(hist.columns) == ["trial", "run_id", "step", "metric", "value"]
    assert hist["value"].notna().all()
    trials = trials_frame(STUDY, study["storage"], study["tracking_uri"])
    client = mlflow.MlflowClient(tracking_uri=study["tracking_uri"])
    for row in trials.itertuples(index=False):
        mine = hist[hist["trial"] == row.trial]
        assert set(mine["run_id"]) == {row.mlflow_run_id}
        loss = mine[mine["metric"] == "loss/total"].set_index("step")["value"]
        if row.outcome == "stable":
            assert list(loss.index) == list(range(60))  # every step, from history.csv
            diag = mine[mine["metric"] == "grad_norm/residual"]["step"].tolist()
            assert diag[:3] == [0, 20, 40]  # diagnostics rows only (NaN rows left out)
        else:
            assert list(loss.index) == [0, 1]  # NaN at step 1: the steps up to the last finite state
        logged = client.get_metric_history(row.mlflow_run_id, "loss/total")
        assert logged
        for m in logged:  # MLflow logged every 10th step; history.csv has every step
            assert loss[m.step] == pytest.approx(m.value, rel=1e-6)
    only = history_frame(STUDY, study["storage"], study["tracking_uri"], metrics=["weight_norm/total", "grad_norm/*"])
    assert set(only["metric"]) >= {"weight_norm/total", "grad_norm/total", "grad_norm/residual"}
    assert all(m == "weight_norm/total" or m.startswith("grad_norm/") for m in only["metric"].unique())


def test_run_history_falls_back_to_metric_histories(study):
    from pinnlab.tracking import run_history

    client = mlflow.MlflowClient(tracking_uri=study["tracking_uri"])
    exp = client.get_experiment_by_name("fallback") or client.create_experiment("fallback")
    exp_id = exp if isinstance(exp, str) else exp.experiment_id
    run_id = client.create_run(exp_id).info.run_id
    for step in (0, 10, 20):
        client.log_metric(run_id, "loss/total", 1.0 / (step + 1), step=step)
    client.log_metric(run_id, "summary/final_loss", 0.05, step=20)
    client.set_terminated(run_id, "KILLED")
    frame = run_history(study["tracking_uri"], run_id)
    assert list(frame.columns) == ["loss/total"] and list(frame.index) == [0, 10, 20]
    assert frame.loc[10, "loss/total"] == pytest.approx(1 / 11)


def test_defaults_are_those_of_pinnlab_sweep(study, monkeypatch):
    """No --storage / --tracking-uri: the store in ./pinnlab-runs, as `pinnlab sweep` uses."""
    monkeypatch.delenv("PINNLAB_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(study["project"])
    trials = trials_frame(STUDY)
    assert len(trials) == 4 and trials["mlflow_run_id"].notna().all() and "final/loss/total" in trials


def test_missing_store_or_study_is_a_config_error(study, tmp_path, capsys):
    journal = tmp_path / "nothing.journal"
    with pytest.raises(StoreError, match="no Optuna journal"):
        trials_frame(STUDY, f"journal:{journal}")
    assert not journal.exists()  # reading creates nothing
    with pytest.raises(ConfigError, match=f"studies: {STUDY}"):
        trials_frame("nope", study["storage"], study["tracking_uri"])
    assert main(["report", "nope", "--storage", study["storage"]]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'nope' is not a study" in err
    with pytest.raises(StoreError, match="no MLflow store at"):
        trials_frame(STUDY, study["storage"], f"sqlite:///{tmp_path / 'other.db'}")
    assert not (tmp_path / "other.db").exists()


# ------------------------------------------------------------------------------------ report
def report_json(study, capsys) -> dict:
    argv = ["report", STUDY, "--storage", study["storage"], "--tracking-uri", study["tracking_uri"], "--format", "json"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_report_json_divergence_rates_agree_with_the_optuna_storage(study, capsys):
    rep = report_json(study, capsys)
    trials = optuna_trials(study)
    judged = [t for t in trials if t.user_attrs.get("outcome")]
    assert rep["n_trials"] == len(trials) == 4
    assert rep["overall"]["n"] == len(judged)
    assert rep["overall"]["diverged"] == sum(t.user_attrs["outcome"] in DIVERGENT for t in judged)
    assert sorted(rep["factors"]) == ["model.width", "optimizer.learning_rate"]
    rows = rep["divergence_by_factor"]
    for factor in rep["factors"]:
        levels = sorted({t.params[factor] for t in judged})
        mine = [r for r in rows if r["factor"] == factor]
        assert [r["level"] for r in mine] == levels
        for r in mine:
            group = [t for t in judged if t.params[factor] == r["level"]]
            d = sum(t.user_attrs["outcome"] in DIVERGENT for t in group)
            assert (r["n"], r["diverged"]) == (len(group), d)
            assert r["rate"] == pytest.approx(d / len(group))
            assert r["nan"] == sum(t.user_attrs["outcome"] == "nan" for t in group)
    lr_rates = {r["level"]: r["rate"] for r in rows if r["factor"] == "optimizer.learning_rate"}
    assert lr_rates == {1e-3: 0.0, 1e19: 1.0}
    pairs = rep["divergence_by_pair"]
    assert len(pairs) == 4
    for r in pairs:
        group = [
            t for t in judged if t.params[r["factor_a"]] == r["level_a"] and t.params[r["factor_b"]] == r["level_b"]
        ]
        assert r["n"] == len(group) == 1
        assert r["rate"] == float(group[0].user_attrs["outcome"] in DIVERGENT)


def test_report_onsets_growth_ranking_and_importance(study, capsys):
    rep = report_json(study, capsys)
    (overall,) = [r for r in rep["nan_onset"] if r["factor"] == "(all)"]
    assert overall["count"] == 2 and overall["median"] == 1 and overall["q3"] == 1
    by_lr = {r["level"]: r for r in rep["nan_onset"] if r["factor"] == "optimizer.learning_rate"}
    assert by_lr[1e-3]["count"] == 0 and by_lr[1e-3]["median"] is None and by_lr[1e19]["count"] == 2

    # weight growth: the slope of ln ||W|| of each trial, recomputed here from history.csv via MLflow
    hist = history_frame(STUDY, study["storage"], study["tracking_uri"], metrics=["weight_norm/total"])
    slopes = []
    for _, g in hist.groupby("trial"):
        g = g.sort_values("step")
        slopes.append(growth_rate(g["step"].to_numpy(), g["value"].to_numpy()))
    finite = sorted(s for s in slopes if math.isfinite(s))
    assert len(finite) == 4  # the NaN trials have two finite steps: a slope, and a steep one
    assert min(finite[2:]) > 1e3 * max(finite[:2])
    (growth,) = [r for r in rep["weight_growth"] if r["factor"] == "(all)"]
    assert growth["count"] == 4 and growth["median"] == pytest.approx(np.median(finite))

    ranking = rep["stable_ranking"]
    completed = sorted((t for t in optuna_trials(study) if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert [r["trial"] for r in ranking] == [t.number for t in completed]
    assert [r["rank"] for r in ranking] == [1, 2]

    imp = rep["importance"]
    assert "uncertainty coefficient" in imp["method"] and "COMPLETE trials only" in imp["justification"]
    first, second = imp["factors"]
    assert first["factor"] == "optimizer.learning_rate" and first["uncertainty"] == pytest.approx(1.0)
    assert first["mutual_info_bits"] == pytest.approx(1.0) and first["rate_spread"] == 1.0
    assert second["factor"] == "model.width" and second["uncertainty"] == pytest.approx(0.0)


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_report_text_formats(study, capsys, fmt):
    argv = ["report", STUDY, "--storage", study["storage"], "--tracking-uri", study["tracking_uri"], "--format", fmt]
    assert main(argv) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        frame = pd.read_csv(io.StringIO(out))
        assert set(frame["section"]) == {
            "divergence_by_factor",
            "divergence_by_pair",
            "nan_onset",
            "divergence_step",
            "weight_growth",
            "causes_by_factor",
            "stable_ranking",
            "importance",
            "survival",
        }
        # (no `boundary` rows: two learning rates are a category, not a range to fit)
        lr = frame[(frame["section"] == "divergence_by_factor") & (frame["factor"] == "optimizer.learning_rate")]
        assert sorted(lr["rate"]) == [0.0, 1.0]
    else:
        head = "## " if fmt == "markdown" else "== "
        for title in [
            "Divergence rate by factor",
            "Divergence rate by pair of factors",
            "NaN onset step",
            "Weight growth rate",
            "Causes found",
            "Stable configurations by final_loss",
            "What drives divergence",
        ]:
            assert head + title in out
        assert "divergent (blowup/diverging/nan/unbounded): 2 of 4 judged trials (50%)" in out
        assert "Method: chance-adjusted uncertainty coefficient" in out
        if fmt == "markdown":
            assert "| factor | level | n | diverged | rate |" in out


# ------------------------------------------------------------------- comparisons on synthetic frames
def synthetic(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """lr decides divergence (>= 0.1 diverges); width is noise; one crashed trial."""
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-4, 0, n)
    width = rng.choice([5, 20, 100], n)
    outcome = np.where(lr >= 0.1, rng.choice(["nan", "blowup"], n), "stable")
    trials = pd.DataFrame(
        {"trial": range(n), "lr": lr, "width": width, "outcome": outcome, "value": rng.uniform(0, 1, n)}
    )
    trials.loc[n - 1, "outcome"] = None  # crashed / unfinished: left out of every rate
    return trials


def test_numeric_factors_are_binned_in_log_space_and_categoricals_are_not():
    t = synthetic()
    lr = factor_levels(t, "lr", {"low": 1e-4, "high": 1.0, "log": True})
    assert len(lr.cat.categories) == 4 and lr.value_counts().min() >= 14
    lows = [float(c.split(" to ")[0]) for c in lr.cat.categories]
    assert lows[0] == pytest.approx(t["lr"].min(), rel=0.05) and lows == sorted(lows)
    assert 0.5 < float(lr.cat.categories[-1].split(" to ")[1]) <= 1.0
    assert list(factor_levels(t, "width").cat.categories) == [5, 20, 100]


def test_importance_finds_the_deciding_factor_and_not_the_noise():
    t = synthetic()
    imp = divergence_importance(t, ["width", "lr"], {"lr": {"log": True}})
    assert list(imp["factor"]) == ["lr", "width"]
    lr, width = imp.iloc[0], imp.iloc[1]
    assert lr["importance"] > 0.5 and lr["p_value"] < 0.01
    assert width["importance"] < 0.1 and width["p_value"] > 0.05
    assert (imp["n"] == 59).all()  # the trial without an outcome is left out
    rates = divergence_by_factor(t, ["width"])
    assert rates["n"].sum() == 59 and (rates["diverged"] == rates["nan"] + rates["blowup"]).all()


def test_importance_without_variation_is_zero():
    t = synthetic()
    t["outcome"] = "stable"
    imp = divergence_importance(t, ["lr", "width"])
    assert (imp["importance"] == 0).all() and (imp["p_value"] == 1).all()


def test_stable_ranking_follows_the_direction():
    t = synthetic()
    best_min = stable_ranking(t, ["lr"], "minimize")
    best_max = stable_ranking(t, ["lr"], "maximize")
    stable = t[t["outcome"] == "stable"]
    assert best_min["value"].is_monotonic_increasing and best_max["value"].is_monotonic_decreasing
    assert len(best_min) == len(stable) and best_min.iloc[0]["value"] == stable["value"].min()


# ------------------------------------------------------------------------------------ dashboard
def test_dashboard_cli_writes_one_offline_file_to_the_store(study, capsys, monkeypatch):
    monkeypatch.delenv("PINNLAB_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(study["project"])
    assert main(["dashboard", STUDY]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == Path(study["project"]) / "pinnlab-runs" / "dashboards" / f"{STUDY}.html"
    html = path.read_text()
    for section in VIEWS:
        assert f'<section class="panel" id="{section}">' in html
    assert html.count("Plotly.newPlot(") == len(VIEWS)
    assert '<script src="http' not in html and "cdn.plot.ly" not in html.split("</script>")[-1]
    assert "Divergence rate: optimizer.learning_rate × model.width" in html  # the two most important

    assert main(["dashboard", STUDY, "--factors", "model.width", "optimizer.learning_rate", "--out", "x.html"]) == 0
    assert "Divergence rate: model.width × optimizer.learning_rate" in Path("x.html").read_text()
    assert main(["dashboard", STUDY, "--factors", "model.width", "model.depth"]) == 2
    assert "'model.depth' is not a factor of study" in capsys.readouterr().err
    assert main(["dashboard", STUDY, "--factors", "model.width", "model.width"]) == 2
    assert "give two different factors" in capsys.readouterr().err


def test_build_report_is_json_ready(data):
    rep = build_report(data)
    assert json.loads(json.dumps(rep, allow_nan=False)) == rep
