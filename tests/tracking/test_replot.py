"""`pinnlab plots RUN_ID` draws a recorded run's plots on demand (sweep trials skip them)."""

from __future__ import annotations

from pinnlab.cli import main
from pinnlab.config import load_config
from pinnlab.runs import Tracking, run_config


def test_plots_on_demand_for_a_run_recorded_without_them(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config("seed-fixed", ["model.width=4", "training.steps=5"])
    run = run_config(cfg, tracking=Tracking(tracking_uri=uri, plots=False))
    client = run.tracker.client
    assert not [a for a in client.list_artifacts(run.mlflow_run_id) if a.path == "plots"]
    assert main(["plots", run.mlflow_run_id, "--tracking-uri", uri]) == 0
    assert "plots/losses.png" in capsys.readouterr().out
    assert {a.path for a in client.list_artifacts(run.mlflow_run_id, "plots")} >= {"plots/losses.png"}
    assert main(["plots", "0" * 32, "--tracking-uri", uri]) == 2
