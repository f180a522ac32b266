"""The first hour with pinnlab: frictions a new user meets, each reproduced and pinned.

Stores are real: Optuna journal studies written with Optuna's own API (no training), a real MLflow
SQLite store for the two commands that need a recorded run (one tiny training each).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import types
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from pinnlab.analysis.compare import MIN_BIN, factor_levels, level_label
from pinnlab.analysis.frames import load_study_data
from pinnlab.analysis.report import render_report
from pinnlab.cli import _first_sentence, _print_sweep, main
from pinnlab.config import load_config, preset_names
from pinnlab.core.keys import SPEC_ATTR
from tests.cli.test_bad_input import FILES, _listing, _main, check_one_line

# ------------------------------------------------------------------- a user pde reading too much
HEAT = """
from userprobs import BadDerivative  # tests/cli/test_bad_input.py's FILES: a domain and a sampler


class Heat(BadDerivative):
    derivatives = ("u_t",)  # u_xx missing

    def pde(self, x, d):
        return d["u_t"] - 0.1 * d["u_xx"]


class Reaction(Heat):
    derivatives = ("u_xx",)

    def pde(self, x, d):
        return d["u_xx"] + 2.0 * d["u"]  # u itself: never listed


class Optional(Heat):
    def pde(self, x, d):
        return d["u_t"] - d.get("u_xx", 0.0)  # a read the pde handles itself
"""


@pytest.fixture
def heat_dir(tmp_path, monkeypatch):
    (tmp_path / "userprobs.py").write_text(FILES["userprobs.py"])
    (tmp_path / "first_hour_heat.py").write_text(HEAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_pde_reading_an_unlisted_derivative_is_one_line_before_anything_runs(heat_dir, capsys):
    uri = f"sqlite:///{heat_dir / 'store' / 'mlflow.db'}"
    before = _listing(heat_dir)
    t0 = time.monotonic()
    rc = _main(["run", "seed", "--set", "problem.name=first_hour_heat:Heat", "--tracking-uri", uri])
    out, err = capsys.readouterr()
    check_one_line(
        rc, out, err, "run", ["problem.name", "first_hour_heat:Heat", "d['u_xx']", "u_t"], time.monotonic() - t0
    )
    assert "internal error" not in err and "KeyError" not in err
    assert {p for p in _listing(heat_dir) - before if not p.startswith("pinnlab-runs")} == set()
    assert not (heat_dir / "store").exists()


def test_pde_may_read_u_and_handle_its_own_optional_reads(heat_dir):
    assert load_config("seed", ["problem.name=first_hour_heat:Reaction"]).problem.name == "first_hour_heat:Reaction"
    assert load_config("seed", ["problem.name=first_hour_heat:Optional"]).problem.name == "first_hour_heat:Optional"


def test_problems_doc_says_what_pde_may_read():
    doc = (Path(__file__).parent.parent / "docs" / "problems.md").read_text()
    assert 'd["u"]' in doc and "`pde` reads no derivative" in doc


# ------------------------------------------------------------------------------- help and presets
def test_reproduce_help_lists_the_studies_it_accepts(capsys):
    from pinnlab.reproduce import STUDIES

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = capsys.readouterr().out
    assert "--list" not in out
    listed = re.findall(r"^  (\w+)  ", out.split("studies (NAME):")[1], flags=re.M)
    assert listed == list(STUDIES)


def test_presets_print_whole_first_sentences_wrapped(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    names = preset_names()
    width = max(map(len, names))
    entries: dict[str, str] = {}
    for line in out.splitlines():
        assert len(line) <= 80, line
        if line[:width].strip():
            name = line[:width].strip()
            entries[name] = line[width + 2 :]
        else:
            entries[name] += " " + line.strip()
    assert list(entries) == names
    for name, text in entries.items():
        assert text.endswith("."), (name, text)
        assert text.count(". ") == text.count("al. ")  # one sentence ("et al." aside)
    assert entries["poisson2d"].endswith("exact u = sin(πx) sin(πy).")  # a sentence across two comment lines
    assert "Krishnapriyan et al. 2021): 2 -> 4x50 tanh -> 1." in entries["convection1d"]


def test_first_sentence_rules():
    assert _first_sentence("# One line.\n# Two.\nkey: 1\n") == "One line."
    assert _first_sentence("# A (Smith et al. 2021) result.  Then more.\n") == "A (Smith et al. 2021) result."
    assert _first_sentence("# no full stop at all\n") == "no full stop at all"


# ------------------------------------------------------------------------------ progress output
def test_reproduce_progress_names_a_run_once(tmp_path, capsys):
    from pinnlab.reproduce.base import Session, run_label

    assert run_label("plain", "plain") == "plain" and run_label("adam", "adam-plain") == "adam-plain"
    assert run_label("a", "question") == "a question"
    session = Session(
        "helmholtz", "t", "s", quick=True, out=tmp_path / "out", tracking_uri=None, track=False, progress=True
    )
    with session:
        session.train(session.config("seed-fixed", {"model.width": 4, "training.steps": 3}), "plain", part="plain")
    err = capsys.readouterr().err
    assert "run 1: plain seed 0:" in err and "plain plain" not in err


def test_eta_is_not_extrapolated_from_the_tracing_step():
    """A first step of 0.5 s (tracing) then 1 ms steps, 7,000 in all: every ETA shown is at most
    a minute (10 s expected), never the hours of 7,000 x 0.5 s."""
    from pinnlab.training.callbacks import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar(desc="t", stream=buf, mininterval=0.05)
    bar.on_train_begin(types.SimpleNamespace(steps_budget=7000))
    time.sleep(0.5)
    bar.on_step(0, {"loss/total": 1.0})
    for step in range(1, 300):
        time.sleep(0.001)
        bar.on_step(step, {"loss/total": 1.0})
    etas = re.findall(r"<([0-9:]+)", buf.getvalue())
    assert etas, buf.getvalue()
    seconds = [sum(int(p) * 60**i for i, p in enumerate(reversed(e.split(":")))) for e in etas]
    assert max(seconds) < 60, etas
    assert "300/7000" in buf.getvalue() or bar.bar.n == 300


# ---------------------------------------------------------------- a tracked run: --json and plots
@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("first-hour-run")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(
            [
                "run",
                "seed-fixed",
                "--set",
                "model.width=4",
                "--set",
                "training.steps=5",
                "--json",
                "--quiet",
                "--tracking-uri",
                uri,
            ]
        )
    assert rc == 0
    return {"uri": uri, "base": base, "summary": json.loads(out.getvalue())}


def test_one_run_json_has_no_replicate_fields(tracked_run, capsys):
    s = tracked_run["summary"]
    assert "divergence_rate" not in s and "replicates" not in s
    assert s["outcome"] and s["steps_run"] == 5
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "`--json` then adds `replicates`" in readme  # README: only with training.replicates
    assert (
        main(
            [
                "run",
                "seed-fixed",
                "--set",
                "model.width=4",
                "--set",
                "training.steps=3",
                "--set",
                "training.replicates=2",
                "--json",
                "--quiet",
                "--no-track",
            ]
        )
        == 0
    )
    two = json.loads(capsys.readouterr().out)
    assert len(two["replicates"]) == 2 and 0 <= two["divergence_rate"] <= 1


def test_plots_prints_absolute_local_paths(tracked_run, capsys):
    client = __import__("mlflow").MlflowClient(tracking_uri=tracked_run["uri"])
    run_id = client.search_runs(client.search_experiments()[0].experiment_id)[0].info.run_id
    assert main(["plots", run_id, "--tracking-uri", tracked_run["uri"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(Path(p).is_absolute() and Path(p).is_file() and p.endswith(".png") for p in lines), lines
    assert all(Path(p).resolve().is_relative_to(tracked_run["base"].resolve()) for p in lines)


# --------------------------------------------------------------------------- the sweep summary
def test_retried_trials_are_shown_apart_from_outcomes(tmp_path, capsys):
    from pinnlab.sweep import load_sweep
    from pinnlab.sweep.runner import study_report

    (tmp_path / "sw.yaml").write_text("base: seed\nspace:\n  model.width: {choices: [4, 8]}\nn_trials: 2\n")
    spec = load_sweep(tmp_path / "sw.yaml", {"study_name": "resumed"})
    url = f"journal:{tmp_path / 'optuna.journal'}"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    study = optuna.create_study(study_name="resumed", storage=storage)
    dist = {"model.width": optuna.distributions.CategoricalDistribution([4, 8])}
    for width in (4, 8):  # each worker died: FAIL, then run again and stable
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL, params={"model.width": width}, distributions=dist
            )
        )
    for n, width in enumerate((4, 8)):
        study.add_trial(
            optuna.trial.create_trial(
                value=1.0,
                params={"model.width": width},
                distributions=dist,
                user_attrs={"outcome": "stable"},
                system_attrs={"retry_history": [n]},
            )
        )
    report = study_report(study, spec, url, None)
    _print_sweep(report)
    out = capsys.readouterr().out
    assert "outcomes: stable 2\n" in out
    assert re.search(r"^not counted: retried 2 \(", out, flags=re.M)


# ------------------------------------------------------------------------- report levels, tables
def _study(tmp_path: Path, name: str, rows: list[dict], space: dict) -> str:
    """A journal study as a pinnlab sweep leaves it, written with Optuna: the spec, params, outcomes."""
    path = tmp_path / f"{name}.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=name, storage=storage)
    study.set_user_attr(SPEC_ATTR, {"space": space, "objective": {"metric": "final_loss", "direction": "minimize"}})
    dists = {
        k: optuna.distributions.CategoricalDistribution(v["choices"])
        if "choices" in v
        else optuna.distributions.FloatDistribution(v["low"], v["high"], log=v.get("log", False))
        for k, v in space.items()
    }
    for r in rows:
        diverged = r["outcome"] != "stable"
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED if diverged else optuna.trial.TrialState.COMPLETE,
                value=None if diverged else 0.1,
                params=r["params"],
                distributions=dists,
                user_attrs={
                    "outcome": r["outcome"],
                    "steps_run": r.get("steps", 100),
                    "steps_budget": 100,
                    "nan_onset_step": r.get("nan"),
                    "divergence_step": r.get("div"),
                },
            )
        )
    return f"journal:{path}"


SPACE = {
    "regularization.l2": {"choices": [0.0, 1e-4, 1e-2]},
    "optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
}
LRS = [1.2e-3, 2.5e-3, 6e-3, 1.5e-2, 4e-2, 9e-2]


def _rows(nan: bool) -> list[dict]:
    rows = []
    for i, lr in enumerate(LRS):
        bad = lr > 3e-2
        rows.append(
            {
                "params": {
                    "regularization.l2": SPACE["regularization.l2"]["choices"][i % 3],
                    "optimizer.learning_rate": lr,
                },
                "outcome": ("nan" if nan else "blowup") if bad else "stable",
                "nan": 40 if bad and nan else None,
                "div": 30 if bad else None,
                "steps": 40 if bad else 100,
            }
        )
    return rows


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    """The report of each study (what `pinnlab report --format json` prints), built once."""
    from pinnlab.analysis.report import build_report

    base = tmp_path_factory.mktemp("first-hour-studies")
    out = {}
    for name, nan in (("levels", True), ("nonan", False)):
        storage = _study(base, name, _rows(nan=nan), SPACE)
        out[name] = json.loads(json.dumps(build_report(load_study_data(name, storage))))
    return out


def test_a_level_prints_the_same_in_every_table(reports):
    rep = reports["levels"]
    out = render_report(rep, "table")
    leveled = [part for part in out.split("\n== ") if not part.startswith(("What drives", "Critical values"))]
    l2 = [line.split()[1] for part in leveled for line in part.splitlines() if line.startswith("regularization.l2 ")]
    assert len(l2) > 3 and set(l2) == {"0", "0.0001", "0.01"}, l2  # survival's "0.0" included
    for section in ("divergence_by_factor", "nan_onset", "causes_by_factor"):
        assert {level_label(r["level"]) for r in rep[section] if r["factor"] == "regularization.l2"} == {
            "0",
            "0.0001",
            "0.01",
        }
    assert {r["level"] for r in rep["survival"]["rows"] if r["factor"] == "regularization.l2"} == {
        "0",
        "0.0001",
        "0.01",
    }
    assert [level_label(v) for v in (0, 0.0, np.float64(0.0), 1e-4, 1e19, 100, "relu")] == [
        "0",
        "0",
        "0",
        "0.0001",
        "1e19",
        "100",
        "relu",
    ]


def test_distribution_tables_leave_out_levels_with_nothing(reports):
    rep = reports["nonan"]
    out = render_report(rep, "table")
    section = out.split("== NaN onset step")[1].split("\n== ")[0]
    assert "no trial went non-finite" in section and "(all)" not in section
    csv = pd.read_csv(io.StringIO(render_report(rep, "csv")))
    assert "nan_onset" not in set(csv["section"])
    detected = csv[csv["section"] == "divergence_step"]
    assert len(detected) and (detected["count"] > 0).all()  # levels without a detection left out
    assert len(detected) < sum(r["factor"] != "" for r in rep["divergence_step"])
    assert rep["nan_onset"] and all(r["count"] == 0 for r in rep["nan_onset"])  # the json keeps every row
    with_nan = render_report(reports["levels"], "markdown").split("## NaN onset step")[1].split("\n## ")[0]
    assert "| (all) | (all) | 6 | 2 |" in with_nan and "| 0 |" not in with_nan.replace("| 0 | 0", "")


def test_a_sampled_range_is_binned_even_with_few_trials(reports):
    spec = SPACE["optimizer.learning_rate"]
    frame = pd.DataFrame({"lr": LRS})
    six = factor_levels(frame, "lr", spec)
    assert len(six.cat.categories) == 3 and six.value_counts().min() >= MIN_BIN
    assert all(" to " in c for c in six.cat.categories)
    three = factor_levels(frame.head(3), "lr", spec)
    assert list(three.cat.categories) == ["0.0012 to 0.006"]
    grid = factor_levels(pd.DataFrame({"w": [5, 20, 100, 5]}), "w", {"choices": [5, 20, 100]})
    assert list(grid.cat.categories) == [5, 20, 100]  # choices keep one level per value
    lr = [r for r in reports["levels"]["divergence_by_factor"] if r["factor"] == "optimizer.learning_rate"]
    assert len(lr) == 3 and all(r["n"] == 2 for r in lr)


# ----------------------------------------------------------------------------- dashboard axes
def test_dashboard_places_zero_apart_on_a_log_axis(tmp_path):
    from pinnlab.dashboards.boundary import boundary_figure, log_placement
    from pinnlab.dashboards.divergence import parallel

    placed = log_placement(np.array([0.0, 1e-4, 1e-2]), {"choices": [0.0, 1e-4, 1e-2]})
    assert placed["ticktext"] == ["0", "1e-4", "1e-3", "1e-2"]
    assert list(placed["values"]) == [-5.0, -4.0, -2.0]  # 0 a decade below 1e-4, not on top of it
    assert log_placement(np.array([0.2, 0.5, 0.9]), {}) is None  # a narrow linear range stays linear
    assert log_placement(np.array([0.02, 0.05]), {"log": True})["ticktext"] == ["1e-2", "1e-1"]

    storage = _study(tmp_path, "axes", _rows(nan=True), SPACE)
    data = load_study_data("axes", storage, history=False)
    fig = boundary_figure(data, ["regularization.l2", "optimizer.learning_rate"])
    assert fig.layout.xaxis.title.text == "regularization.l2 (log scale)"
    assert "0" in fig.layout.xaxis.ticktext
    xs = np.concatenate([np.asarray(t.x, float) for t in fig.data if t.name in ("did not diverge", "diverged")])
    assert len(set(np.round(xs, 6))) == 3  # 0, 1e-4, 1e-2: three distinct places
    dims = {d.label: d for d in parallel(data).data[0].dimensions}
    assert list(dims["regularization.l2"].ticktext) == ["0", "0.0001", "0.01"]
    assert dims["optimizer.learning_rate (log10)"].ticktext == ("1e-3", "1e-2", "1e-1")
