"""Sweeps: spec validation, the search space, and real end-to-end studies (Optuna journal storage,
MLflow SQLite store, worker processes) on tiny trainings."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from pinnlab.cli import main
from pinnlab.core.errors import ConfigError
from pinnlab.sweep.objective import objective_value
from pinnlab.sweep.space import grid_space, suggest
from pinnlab.sweep.spec import ParamSpec, load_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_validate_and_say_what_they_answer(path):
    spec = load_sweep(path)
    text = path.read_text()
    assert text.startswith("# Question:")
    assert f"pinnlab sweep sweeps/{path.name}" in text
    assert spec.study_name == path.stem and spec.space
    smoke = spec.for_smoke()
    assert smoke.study_name.endswith("-smoke") and smoke.n_trials <= 3
    assert smoke.base_config["training"]["steps"] == 20


def test_seed_divergence_space_is_the_one_asked_for():
    spec = load_sweep(ROOT / "sweeps" / "seed_divergence.yaml")
    assert spec.space["model.activation"].choices == ["relu", "softplus", "tanh", "sin", "silu"]
    assert spec.space["model.width"].choices == [5, 20, 100]
    assert spec.space["loss.formulation"].choices == ["raw", "squared"]
    assert spec.space["regularization.l2"].choices == [0.0, 1e-4, 1e-2]
    assert spec.space["optimizer.learning_rate"].log


@pytest.mark.parametrize(
    "bad, field, text",
    [
        ({"space": {"model.widht": {"choices": [1]}}}, "space.model.widht", "unknown key"),
        ({"space": {"model.activation": {"choices": ["rleu"]}}}, "space.model.activation", "'rleu' is not one of"),
        (
            {"space": {"optimizer.learning_rate": {"low": 1, "high": 0.1}}},
            "space.optimizer.learning_rate",
            "low <= high",
        ),
        ({"space": {"model.width": {"low": 0, "high": 10, "log": True}}}, "space.model.width", "low > 0"),
        ({"space": {"model.width": {"low": 1}}}, "space.model.width", "both low and high"),
        ({"objective": {"metric": "foo"}}, "objective.metric", "'foo' is not one of"),
        ({"overrides": {"model.depth": 0}}, "overrides.model.depth", "greater than 0"),
        ({"n_trials": 0}, "n_trials", "greater than 0"),
        ({"sampler": {"name": "cmaes"}}, "sampler.name", "'tpe', 'random', 'grid' or 'boundary'"),
        ({"base": "nope"}, "base", "neither a YAML file nor a preset"),  # names the sweep file too
        ({"surprise": 1}, "surprise", "unknown key"),
    ],
)
def test_bad_sweep_files_fail_with_the_field(tmp_path, bad, field, text):
    data = {"base": "seed", "space": {"model.width": {"choices": [5]}}, **bad}
    with pytest.raises(ConfigError) as info:
        load_sweep(write(tmp_path, data))
    assert info.value.field == field and text in str(info.value)


def test_bad_sweep_file_through_the_cli_is_one_line_exit_2(tmp_path, capsys):
    path = write(tmp_path, {"base": "seed", "space": {"model.widht": {"choices": [1]}}})
    assert main(["sweep", str(path), "--storage", f"journal:{tmp_path / 'j.journal'}"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "space.model.widht" in err
    assert not (tmp_path / "j.journal").exists()  # nothing half-written


def test_suggest_uses_dotted_paths_and_types():
    space = {
        "model.activation": ParamSpec(choices=["relu", "tanh"]),
        "model.width": ParamSpec(low=5, high=50, log=True),
        "optimizer.learning_rate": ParamSpec(low=1e-4, high=1e-1, log=True),
        "model.depth": ParamSpec(low=1, high=3, step=1),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest(study.ask(), space)
    assert set(params) == set(space)
    assert isinstance(params["model.width"], int) and isinstance(params["optimizer.learning_rate"], float)
    assert grid_space({"model.depth": space["model.depth"]}) == {"model.depth": [1, 2, 3]}


def test_objective_value_reads_summary_and_history_metrics():
    summary = {"final_loss": 0.5, "rel_l2_error": None, "final_metrics": {"loss/total": 0.5}}
    assert objective_value(summary, "final_loss") == 0.5
    assert objective_value(summary, "rel_l2_error") is None
    assert objective_value(summary, "loss/total") == 0.5
    assert objective_value({"final_loss": float("nan")}, "final_loss") is None


# ------------------------------------------------------------------ end to end (real stores)

TINY = {
    "base": "seed",
    "overrides": {"training.steps": 60, "diagnostics.every": 20, "divergence.heldout_points": 256},
    "space": {
        # huge learning rates diverge at once; small ones stay finite for 60 steps
        "optimizer.learning_rate": {"choices": [1.0e-3, 1.0e19]},
        "model.width": {"choices": [5, 10]},
    },
    "objective": {"metric": "final_loss", "direction": "minimize"},
    "sampler": {"name": "grid"},
    "n_trials": 4,
}


def sweep_cli(tmp_path, capsys, *extra, path=None):
    """``pinnlab sweep`` in-process against stores in tmp_path; returns the JSON report."""
    argv = [
        "sweep",
        str(path or tmp_path / "tiny.yaml"),
        "--storage",
        f"journal:{tmp_path / 'optuna.journal'}",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--json",
        "--quiet",
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_end_to_end_sweep_with_two_workers_then_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PINNLAB_HOME", str(tmp_path / "store"))
    write(tmp_path, TINY, "tiny.yaml")
    report = sweep_cli(tmp_path, capsys, "--workers", "2")
    # a worker that lost the race for the last queued slot ends the trial Optuna made it as a
    # surplus FAIL, untrained and not counted (pinnlab.sweep.study): told apart, never as an error
    surplus = report["outcomes"].pop("surplus", 0)
    assert report["ran_now"] == 4
    assert report["counts"] == {"COMPLETE": 2, "PRUNED": 2, **({"FAIL": surplus} if surplus else {})}
    assert report["outcomes"] == {"stable": 2, "nan": 2}

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    study = optuna.load_study(study_name="tiny", storage=storage)
    trials = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert len(trials) == 4
    for t in trials:
        lr = t.params["optimizer.learning_rate"]
        assert t.user_attrs["outcome"] == ("nan" if lr > 1 else "stable")
        assert t.state.name == ("PRUNED" if lr > 1 else "COMPLETE")
        # a divergent trial is infeasible for samplers that read constraints (TPE), a stable one feasible
        assert t.constraints == {"divergence": 1.0 if lr > 1 else 0.0}
        if lr > 1:
            assert t.user_attrs["nan_onset_step"] == 1
            assert t.user_attrs["first_nonfinite"].startswith("grad/")
        assert t.user_attrs["mlflow_run_id"]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == report["parent_run_id"]]
    assert len(parents) == 1 and parents[0].info.run_id == report["parent_run_id"]
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 4
    by_id = {r.info.run_id: r for r in children}
    for t in trials:
        run = by_id[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["outcome"] == t.user_attrs["outcome"]
        assert run.data.tags["trial"] == str(t.number) and run.data.tags["study"] == "tiny"
        assert run.info.status == "FINISHED"

    # the same command again: nothing is redone
    again = sweep_cli(tmp_path, capsys, "--workers", "2")
    assert again["ran_now"] == 0 and again["counts"] == report["counts"]
    assert len(optuna.load_study(study_name="tiny", storage=storage).get_trials()) == 4

    # a larger budget runs only the missing trials
    more = sweep_cli(tmp_path, capsys, "--n-trials", "5", "--no-track")
    assert more["ran_now"] == 1


# seed_boundary.yaml's smoke variant runs end to end in tests/sweep/test_boundary.py (with its report and
# dashboard), not twice
@pytest.mark.parametrize("path", [p for p in SWEEPS if p.name != "seed_boundary.yaml"], ids=lambda p: p.name)
def test_smoke_variant_of_every_shipped_sweep(tmp_path, capsys, path):
    """The tiny variant of each file in sweeps/ runs end to end without a crashed trial (untracked: the
    README's sweep and the boundary sweep run tracked, with their reports, in other tests)."""
    report = sweep_cli(tmp_path, capsys, "--smoke", "--no-track", path=path)
    assert report["study_name"] == f"{path.stem}-smoke"
    assert sum(report["counts"].values()) == 3 and "FAIL" not in report["counts"]


def test_optuna_account_of_a_surplus_or_stopped_trial_is_dropped():
    """Optuna logs a trial that raised as two warnings (the error with its traceback, then its
    value); for a surplus trial (and a stop) the sweep tells it itself, so both are dropped, and
    any other trial's warnings pass."""
    import logging

    from pinnlab.core.signals import Terminate
    from pinnlab.sweep.objective import Surplus
    from pinnlab.sweep.stops import QuietStop

    quiet = QuietStop(Terminate(), (KeyboardInterrupt, Surplus))

    def record(message, exc=None):
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("optuna", logging.WARNING, __file__, 1, message, None, info)

    err = Surplus("every slot of the budget was taken")
    assert not quiet.filter(
        record(f"Trial 4 failed with parameters: {{}} because of the following error: {err!r}.", err)
    )
    assert not quiet.filter(record("Trial 4 failed with value None."))
    boom = RuntimeError("boom")
    assert quiet.filter(record("Trial 5 failed with parameters: {} because of the following error: boom.", boom))
    assert quiet.filter(record("Trial 5 failed with value None."))


def test_threads_that_cannot_apply_are_said_not_ignored(monkeypatch):
    """``--threads`` once TensorFlow runs in the process: its pools cannot change, one warning says so."""
    import warnings

    from pinnlab.backend import import_tensorflow
    from pinnlab.sweep.runner import _limit_threads

    tf = import_tensorflow()
    tf.constant(1.0) + 1.0  # the device (and its pools) exist
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # so that the test's end restores the variables _limit_threads sets
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _limit_threads(current + 3)
    assert [str(w.message) for w in caught if "--threads" in str(w.message)], [str(w.message) for w in caught]
    assert "has no effect in this process" in str(caught[-1].message)
