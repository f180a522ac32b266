"""The MLflow UI as the place to compare a sweep's runs, checked in a real browser.

The tiny grid sweep of tests/test_analysis.py (learning rate 1e-3 stays finite, 1e19 goes NaN at
step 1; width 5 or 10) runs through ``pinnlab sweep`` in two parts (3 trials, then resumed to 4) into a real SQLite store;
``mlflow ui`` serves that store on a free 127.0.0.1 port and headless Chromium opens:

* the address the sweep printed last: the runs table (not MLflow's GenAI view), every trial a row
  whose name starts with its number and outcome (``t0 nan lr=1e19 w=5``);
* a NaN run's page: it renders with its tags and only finite metrics;
* the parent run's artifacts: the report and the dashboard, refreshed by the resumed sweep.

Screenshots (PNG) of the three pages are written to the test's temporary directory.  The naming
and URL rules themselves are pure logic, tested without a store.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from pinnlab.cli import main
from pinnlab.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from pinnlab.tracking.uri import BY_OUTCOME, RUNS_VIEW, UI_ADDRESS, runs_url, ui_command
from pinnlab.tracking.writer import NAME_LIMIT, abbreviations, run_label
from tests.test_analysis import TINY
from tests.test_dashboard_browser import BIN, CHROMIUM, RecordingProxy, Server, free_port, needs_chromium

STUDY = "ui_tiny"


# ------------------------------------------------------------------------------ pure logic
@pytest.mark.parametrize(
    "paths, expected",
    [
        (["optimizer.learning_rate", "model.width"], ["lr", "w"]),
        (["model.width", "model.depth", "training.seed"], ["w", "d", "s"]),
        (["model.width", "optimizer.weight_decay", "problem.params.wave"], ["width", "wd", "wave"]),
        (["model.width", "problem.params.width"], ["model.width", "params.width"]),
        (["loss.weights.residual", "loss.weights.res"], ["residual", "res"]),
    ],
    ids=["initials", "single-words", "initials-clash", "last-part-clash", "initials-then-words"],
)
def test_abbreviations_are_derived_from_the_path_and_unique(paths, expected):
    got = abbreviations(paths)
    assert [got[p] for p in paths] == expected
    assert len(set(got.values())) == len(paths)


def test_run_names_put_the_trial_and_outcome_first():
    tags = {"study": "s", "trial": "7", "optimizer.learning_rate": "0.1", "model.width": "16"}
    factors = ["optimizer.learning_rate", "model.width"]
    assert run_label("ignored", tags, factors) == "t7 lr=0.1 w=16"
    assert run_label("ignored", tags, factors, "nan") == "t7 nan lr=0.1 w=16"
    assert run_label(None, {**tags, "optimizer.learning_rate": "3.1622776601683795e-05"}, factors, "stable") == (
        "t7 stable lr=3.16e-5 w=16")
    assert run_label(None, {**tags, "replicate": "1"}, factors, "blowup", seed=3) == "t7s3 blowup lr=0.1 w=16"
    assert run_label("seed", {}, [], "nan") == "seed nan" and run_label("seed", {}, []) == "seed"
    many = {"trial": "12", **{f"a.factor_{i}": str(i * 1000.5) for i in range(12)}}
    name = run_label(None, many, list(many)[1:], "silent_failure")
    assert name.startswith("t12 silent_failure ") and len(name) <= NAME_LIMIT


def test_runs_urls_open_the_runs_table():
    assert runs_url("sqlite:////a/mlflow.db", "3") == f"{UI_ADDRESS}/#/experiments/3/runs?{RUNS_VIEW}"
    assert runs_url("http://h:5000/", "3", by_outcome=True) == (
        f"http://h:5000/#/experiments/3/runs?workflowType=machine_learning&{BY_OUTCOME}")
    assert ui_command("sqlite:////a/mlflow.db", "3") == (
        "mlflow ui --backend-store-uri sqlite:////a/mlflow.db, then open "
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning")


# ------------------------------------------------------------------------------ a real sweep
def _sweep(tmp_path: Path, capsys, *extra: str) -> list[str]:
    argv = ["sweep", str(tmp_path / "tiny.yaml"), "--study-name", STUDY, "--storage",
            f"journal:{tmp_path / 'optuna.journal'}", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--quiet", *extra]
    assert main(argv) == 0
    return capsys.readouterr().out.strip().splitlines()


def _browse(url: str, proxy: RecordingProxy, screenshot: Path, budget_ms: int = 15000) -> str:
    """Load ``url`` (a page of the local MLflow UI) in headless Chromium; every request to another
    host goes to ``proxy``, which answers nothing and records it.  Returns the rendered DOM."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-dev-shm-usage", f"--proxy-server=http://127.0.0.1:{proxy.port}",
           "--proxy-bypass-list=127.0.0.1", "--window-size=1400,1000", f"--virtual-time-budget={budget_ms}",
           "--dump-dom", f"--screenshot={screenshot}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout, proc.stderr[-3000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return proc.stdout


def _artifact_text(client: mlflow.MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text()


@needs_chromium
def test_the_sweeps_runs_in_the_mlflow_ui(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))  # the space in its order
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)

    # three trials, then the resume that completes the budget: both end by attaching the analysis
    _sweep(tmp_path, capsys, "--n-trials", "3")
    (exp,) = [e for e in client.search_experiments() if e.name == STUDY]
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    (parent,) = client.search_runs([exp.experiment_id], "tags.`pinnlab.kind` = 'study'")
    assert f"study {STUDY}: 3 trials" in _artifact_text(client, parent.info.run_id, "report.md", tmp_path / "first")
    out = _sweep(tmp_path, capsys)
    assert f"study {STUDY}: 4 trials" in _artifact_text(client, parent.info.run_id, "report.md", tmp_path / "again")
    dashboard = _artifact_text(client, parent.info.run_id, "dashboard.html", tmp_path / "again")
    assert "pinnlab divergence dashboard" in dashboard and "4 trials" in dashboard

    # the output ends with the runs table's address
    command = out[-1]
    assert command.startswith(f"to look: mlflow ui --backend-store-uri {uri}, then open ")
    url = command.rsplit(" ", 1)[-1]
    assert url == runs_url(uri, exp.experiment_id, by_outcome=True)

    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 4
    names = {}
    for run in children:
        tags = run.data.tags
        names[run.info.run_id] = run.info.run_name
        lr, width = float(tags["optimizer.learning_rate"]), tags["model.width"]
        assert run.info.run_name == f"t{tags['trial']} {tags['outcome']} lr={lr:.3g} w={width}".replace("e+", "e")
        assert tags["outcome"] == ("nan" if lr > 1 else "stable") and tags["diverged"] == str(lr > 1).lower()
        for key in run.data.metrics:  # never a non-finite value, at any step (summary/* included)
            assert all(math.isfinite(m.value) for m in client.get_metric_history(run.info.run_id, key)), key
    nan_run = next(r for r in children if r.data.tags["outcome"] == "nan")
    assert nan_run.data.metrics["summary/nan_onset_step"] == 1  # the onset as a number; the values stay finite

    port = free_port()
    server = Server([str(BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], tmp_path, port)
    proxy = RecordingProxy()
    try:
        server.answer("/api/2.0/mlflow/experiments/search", {"max_results": 10})
        base = f"http://127.0.0.1:{port}"

        # the printed address: the runs table, every trial a row named by number and outcome
        dom = _browse(url.replace(UI_ADDRESS, base), proxy, tmp_path / "runs-table.png")
        assert "Run Name" in dom
        for name in [*names.values(), parent.info.run_name]:
            assert f">{name}<" in dom, name
        rows = re.findall(r">(t\d+ (?:nan|stable) [^<]*)<", dom)
        assert [r.split()[1] for r in rows][:2] == ["nan", "nan"]  # divergent first
        assert (tmp_path / "runs-table.png").stat().st_size > 10_000

        # a NaN run's page renders: its name, its tags, its (finite) metrics
        page = f"{base}/#/experiments/{exp.experiment_id}/runs/{nan_run.info.run_id}?{RUNS_VIEW}"
        dom = _browse(page, proxy, tmp_path / "nan-run.png")
        assert names[nan_run.info.run_id] in dom and "nan_onset_step" in dom and "first_nonfinite" in dom
        assert "summary/nan_onset_step" in dom and "Oops" not in dom

        # the parent run's artifacts: the dashboard in MLflow's HTML viewer, and the report
        page = f"{base}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}/artifacts/dashboard.html?{RUNS_VIEW}"
        dom = _browse(page, proxy, tmp_path / "parent-dashboard.png")
        assert "report.md" in dom and "mlflow-html-iframe" in dom
        assert proxy.page_hosts() == []  # the UI and the dashboard load nothing from the network
    finally:
        proxy.close()
        server.stop()
