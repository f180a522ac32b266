"""Batched sweeps (``batch: B`` / ``--batch B``): a worker asks for B trials at a time and trains
those that share a network as replicates of one stacked step, each with its own hyperparameters.
Each trial must end exactly as it would alone: same state, outcome, onsets and value (float
rounding), its own MLflow run and pruning.  Real stores: an Optuna journal and MLflow SQLite."""

from __future__ import annotations

import json

import mlflow
import optuna
import pytest
import yaml

from pinnlab.cli import main

GRID = {
    "base": "seed-fixed",
    "overrides": {"training.steps": 40, "diagnostics.every": 10, "divergence.heldout_points": 128},
    "space": {
        # two network shapes: a batch of 6 trains as two stacked groups of 3, one per width
        "model.width": {"choices": [6, 8]},
        "optimizer.learning_rate": {"choices": [1.0e-3, 3.0e-2, 1.0e19]},
    },
    "objective": {"metric": "final_loss", "direction": "minimize"},
    "sampler": {"name": "grid"},
    "n_trials": 6,
}


def _study(tmp_path, capsys, name: str, batch: int, data=GRID) -> dict:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**data, "study_name": name}))
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["sweep", str(path), "--storage", storage, "--tracking-uri", uri, "--workers", "0", "--quiet"]) == 0
    assert main(["worker", "--study-name", name, "--storage", storage, "--batch", str(batch), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ran_now"] == data["n_trials"]
    study = optuna.load_study(
        study_name=name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
        ),
    )
    return {tuple(sorted(t.params.items())): t for t in study.get_trials()}


def test_a_batch_of_trials_ends_as_each_trial_alone(tmp_path, capsys):
    alone = _study(tmp_path, capsys, "alone", 1)
    batched = _study(tmp_path, capsys, "batched", 6)
    assert alone.keys() == batched.keys() and len(alone) == 6
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for params, a in alone.items():
        b = batched[params]
        assert b.state == a.state, params
        for key in ("outcome", "nan_onset_step", "first_nonfinite", "divergence_step", "steps_run"):
            assert b.user_attrs.get(key) == a.user_attrs.get(key), (params, key)
        if a.value is not None:
            assert b.value == pytest.approx(a.value, rel=1e-4)
        run = client.get_run(b.user_attrs["mlflow_run_id"])  # its own MLflow run, with its own params
        assert run.info.status == "FINISHED" and run.data.tags["trial"] == str(b.number)
        assert float(run.data.params["optimizer.learning_rate"]) == dict(params)["optimizer.learning_rate"]
        assert "stacked_with" not in a.user_attrs
    assert {t.user_attrs["outcome"] for t in batched.values() if t.params["optimizer.learning_rate"] > 1} == {"nan"}
    # trials of one width train together, each group one stacked step
    groups = {tuple(t.user_attrs["stacked_with"]) for t in batched.values()}
    assert sorted(len(g) for g in groups) == [3, 3]
    for g in groups:
        assert len({t.params["model.width"] for t in batched.values() if t.number in g}) == 1
