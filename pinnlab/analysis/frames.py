"""Tidy DataFrames of a study: one row per trial, and a long per-step history.

The two stores are joined through the sweep's cross-link: the trial's user attribute
``mlflow_run_id`` names its MLflow child run (fallback: the child run whose ``trial`` tag is the
trial number), and the study's user attribute ``mlflow_parent_run_id`` names the parent run whose
children are the trials.  Optuna is read through :mod:`pinnlab.sweep.read`, MLflow through
:mod:`pinnlab.tracking` (the only modules allowed to import them).

Defaults are those of ``pinnlab sweep``: the journal ``<store>/optuna.journal`` and the tracking URI
of :func:`pinnlab.tracking.resolve_tracking_uri` (``$MLFLOW_TRACKING_URI``, else SQLite in
``$PINNLAB_HOME`` or ``./pinnlab-runs``).

From a notebook::

    from pinnlab.analysis import trials_frame, history_frame
    trials = trials_frame("seed_divergence")                  # one row per trial
    hist = history_frame("seed_divergence", metrics=["weight_norm/total", "grad_norm/*"])
    hist.merge(trials[["trial", "outcome"]], on="trial")        # long: trial, run_id, step, metric, value

``trials_frame`` columns: ``trial``, ``state`` (Optuna), one column per swept parameter named by its
dotted config path (``model.activation``), ``outcome``, ``diverged`` (outcome in diverging / nan / blowup /
unbounded; missing for trials without an outcome), ``nan_onset_step``, ``first_nonfinite``,
``divergence_step``, ``steps_run``, ``steps_budget``, ``value`` (the objective, COMPLETE trials
only), the other summary numbers the sweep stores (``final_loss``, ``heldout_residual``,
``weight_norm_ratio``, ...), ``final/<metric>`` (the last logged value of each MLflow metric, e.g.
``final/weight_norm/total``), ``mlflow_run_id``, ``run_status`` and ``artifact_uri``.  A FAIL trial without an outcome
(an exception) has outcome ``crash``; ``retried`` if its worker died or was stopped and it was run
again, ``surplus`` if it lost the race for the last queued trial.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.core.errors import ConfigError
from pinnlab.core.keys import MLFLOW_RUN_ID, REPLICATE_ATTRS, TRIAL_TAG
from pinnlab.core.outcomes import trial_outcome
from pinnlab.core.summary import INT_FIELDS, TRIAL_ATTRS
from pinnlab.tracking.uri import default_storage_url, default_store, display_url, resolve_tracking_uri

__all__ = [
    "StudyData",
    "load_study_data",
    "trials_frame",
    "history_frame",
    "resolve_storage",
    "default_dashboard_path",
    "check_factors",
    "series",
]

# trial user attrs (written by pinnlab.sweep.objective) that become columns: these first (the run
# tags stand in where a trial lacks them), then the objective value, then the other summary fields
_ATTR_COLUMNS = ("outcome", "nan_onset_step", "first_nonfinite", "divergence_step", "steps_run", "steps_budget")
_SUMMARY_COLUMNS = tuple(name for name in TRIAL_ATTRS if name not in _ATTR_COLUMNS)


@dataclass
class StudyData:
    """Everything the report and the dashboards need, read once.

    ``factors``: the swept parameters (in the order of the spec stored with the study, which the
    storage may have sorted by name); ``space``: their specs
    (``choices`` / ``low`` / ``high`` / ``log``) as stored with the study; ``objective``: the
    objective metric's name; ``history``: the long frame (None when not loaded).
    """

    name: str
    storage: str
    tracking_uri: str | None
    parent_run_id: str | None
    direction: str
    objective: str
    factors: list[str]
    space: dict[str, dict[str, Any]]
    trials: pd.DataFrame
    history: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def shown(self, url: str | None) -> str | None:
        """A store URL as a page or report may show it (a password hidden)."""
        return None if url is None else display_url(url)


def resolve_storage(storage: str | None) -> str:
    """``storage`` or the default of ``pinnlab sweep``: ``journal:<store>/optuna.journal``."""
    if storage:
        return storage

    return default_storage_url(default_store())


def _tag_value(text: str | None) -> Any:
    """A run tag back to a value: ``"none"`` -> None, integers -> int."""
    if text is None or text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _runs_by_trial(record, tracking_uri: str | None, notes: list[str]) -> dict[int, dict[str, Any]]:
    """The MLflow child run of each trial number (empty when the sweep was not tracked)."""
    if record.parent_run_id is None:
        notes.append("the study has no MLflow parent run (swept with --no-track): no final metrics, no history")
        return {}
    from pinnlab.tracking.reader import child_runs

    runs = child_runs(tracking_uri, record.parent_run_id)
    by_id = {r["run_id"]: r for r in runs}
    by_tag = {r["tags"].get(TRIAL_TAG): r for r in runs}
    out = {}
    for t in record.trials:
        run = by_id.get(t.user_attrs.get(MLFLOW_RUN_ID)) or by_tag.get(str(t.number))
        if run is not None:
            out[t.number] = run
    return out


def _trial_rows(record, runs: dict[int, dict[str, Any]], factors: list[str]) -> pd.DataFrame:
    rows = []
    for t in record.trials:
        attrs = t.user_attrs
        run = runs.get(t.number)
        tags = run["tags"] if run else {}
        row: dict[str, Any] = {"trial": t.number, "state": t.state}
        for name in factors:
            row[name] = t.params.get(name)
        for name in _ATTR_COLUMNS:
            value = attrs.get(name)
            if value is None and name in tags and name not in attrs:  # trial attrs missing: the run's tags
                value = _tag_value(tags[name])
            row[name] = value
        outcome = trial_outcome(t.state, row["outcome"], t.kind)
        row["outcome"] = None if outcome is None else str(outcome)
        row["diverged"] = None if outcome is None or not outcome.judged else outcome.divergent
        row["value"] = t.value
        for name in _SUMMARY_COLUMNS + REPLICATE_ATTRS:  # replicate lists: pinnlab.config.replicates
            row[name] = attrs.get(name)
        if run:
            for key, value in sorted(run["metrics"].items()):
                if not key.startswith("summary/"):
                    row[f"final/{key}"] = value
        row[MLFLOW_RUN_ID] = run["run_id"] if run else attrs.get(MLFLOW_RUN_ID)
        row["run_status"] = run["status"] if run else None
        row["artifact_uri"] = run["artifact_uri"] if run else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        columns = [
            "trial",
            "state",
            *factors,
            *_ATTR_COLUMNS,
            "diverged",
            "value",
            *_SUMMARY_COLUMNS,
            *REPLICATE_ATTRS,
            "mlflow_run_id",
            "run_status",
            "artifact_uri",
        ]
        frame = pd.DataFrame(columns=list(dict.fromkeys(columns)))  # a study without trials: a row's columns
    finals = sorted(c for c in frame.columns if c.startswith("final/"))
    tail = ["mlflow_run_id", "run_status", "artifact_uri"]
    head = [c for c in frame.columns if c not in finals and c not in tail]
    frame = frame[head + finals + tail]
    for name in (c for c in INT_FIELDS if c in frame.columns):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
    frame["diverged"] = frame["diverged"].astype("boolean")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    return frame.sort_values("trial", ignore_index=True)


FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")  # Optuna states of a trial that ended


def _matches(name: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _history_long(trials: pd.DataFrame, tracking_uri: str | None, metrics: Sequence[str] | None) -> pd.DataFrame:
    from pinnlab.tracking.reader import run_history

    parts = []
    for trial, run_id, artifacts in trials[["trial", "mlflow_run_id", "artifact_uri"]].itertuples(index=False):
        if not isinstance(run_id, str) or not run_id:
            continue
        wide = run_history(tracking_uri, run_id, artifacts if isinstance(artifacts, str) else None)
        if wide is None or wide.empty:
            continue
        keep = [c for c in wide.columns if _matches(c, metrics)]
        if not keep:
            continue
        long = wide[keep].rename_axis("step").reset_index().melt(id_vars="step", var_name="metric", value_name="value")
        long = long[long["value"].notna()]  # NaN = not measured at that step (diagnostics columns)
        long.insert(0, "run_id", run_id)
        long.insert(0, "trial", int(trial))
        parts.append(long)
    if not parts:
        return pd.DataFrame(
            {
                "trial": pd.Series(dtype="int64"),
                "run_id": pd.Series(dtype=object),
                "step": pd.Series(dtype="int64"),
                "metric": pd.Series(dtype=object),
                "value": pd.Series(dtype=float),
            }
        )
    out = pd.concat(parts, ignore_index=True)
    out["step"] = out["step"].astype("int64")
    out["value"] = out["value"].astype(float)
    return out


def load_study_data(
    study_name: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    *,
    history: bool = True,
    metrics: Sequence[str] | None = None,
) -> StudyData:
    """Read a study and its MLflow runs once (see the module docstring for the columns).

    ``history=False`` skips downloading every run's ``history.csv``; ``metrics`` keeps only the
    history metrics matching these names or shell patterns (``grad_norm/*``).
    """
    from pinnlab.sweep.read import read_study

    storage = resolve_storage(storage)
    record = read_study(study_name, storage)
    spec = record.spec or {}
    space: dict[str, dict[str, Any]] = dict(spec.get("space") or {})
    factors = list(space)
    for t in record.trials:  # a study not created by pinnlab: its params are the factors
        factors += [p for p in t.params if p not in factors]
    notes: list[str] = []
    if not any(t.state in FINISHED_STATES for t in record.trials):  # created, or only queued: still a valid study
        notes.append(
            f"study {study_name!r} has no finished trials yet ({len(record.trials)} queued or running): "
            "every table is empty; run its sweep or workers first"
        )
    uri = resolve_tracking_uri(tracking_uri) if record.parent_run_id else None
    runs = _runs_by_trial(record, tracking_uri, notes)  # unresolved: errors name the setting used
    trials = _trial_rows(record, runs, factors)
    data = StudyData(
        name=study_name,
        storage=storage,
        tracking_uri=uri,
        parent_run_id=record.parent_run_id,
        direction=record.direction,
        objective=(spec.get("objective") or {}).get("metric", "value"),
        factors=factors,
        space=space,
        trials=trials,
        notes=notes,
    )
    if history:
        data.history = _history_long(trials if runs else trials.iloc[:0], uri, metrics)
    return data


def default_dashboard_path(study_name: str) -> Path:
    """Where ``pinnlab dashboard`` writes by default: ``<store>/dashboards/<study>.html``."""

    return default_store() / "dashboards" / f"{study_name}.html"


def check_factors(data: StudyData, factors: Sequence[str]) -> list[str]:
    """``factors`` if each is a swept parameter of the study; a ConfigError naming the bad one otherwise."""

    if len(set(factors)) != len(factors):
        raise ConfigError("--factors", f"{' '.join(factors)}: give two different factors")
    for f in factors:
        if f not in data.factors:
            raise ConfigError(
                "--factors",
                f"{f!r} is not a factor of study {data.name!r} (factors: {', '.join(data.factors) or 'none'})",
            )
    return list(factors)


def trials_frame(study_name: str, storage: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per trial, Optuna and MLflow joined (columns: module docstring)."""
    return load_study_data(study_name, storage, tracking_uri, history=False).trials


def history_frame(
    study_name: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    *,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Long per-step history of every trial: columns ``trial, run_id, step, metric, value``.

    From each child run's ``history.csv`` (every step; MLflow's metric history when the artifact is
    missing).  Rows where a metric was not measured (diagnostics between their steps) are left out.
    """
    return load_study_data(study_name, storage, tracking_uri, metrics=metrics).history


def series(history: pd.DataFrame, trial: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one trial's metric, sorted by step."""
    sel = history[(history["trial"] == trial) & (history["metric"] == metric)].sort_values("step")
    return sel["step"].to_numpy(), sel["value"].to_numpy(dtype=float)
