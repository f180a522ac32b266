"""``pinnlab report STUDY``: the comparison of stable and divergent trials, as text or data.

:func:`build_report` returns one JSON-ready dict (what ``--format json`` prints):

==========================  =================================================================
``study``, ``storage``,     where the data came from; ``parent_run_id`` is the MLflow parent run
``tracking_uri``
``states``, ``outcomes``    trials per Optuna state and per pinnlab outcome
``overall``                 n, diverged, rate over the judged trials (those with an outcome)
``divergence_by_factor``    per factor level: n, diverged, rate, count per outcome class
``divergence_by_pair``      per pair of factors and pair of levels: n, diverged, rate
``nan_onset``               per factor level: distribution (count, median, q1, q3, min, max) of
                            the step of the first non-finite value, over the trials that had one
``divergence_step``         the same for the step at which any divergence rule fired
``weight_growth``           the same for the least-squares slope of ln ‖W‖ (``weight_norm/total``)
                            over each trial's steps, per step
``causes``                  judged trials per cause found in the run, and per cause known before
                            training (``known_causes``; :mod:`pinnlab.training.causes`)
``causes_by_factor``        per factor level: n and the number of trials with each cause found
``stable_ranking``          stable trials with a finite objective, best first
``importance``              ``method``, ``justification`` and one row per factor
                            (:mod:`pinnlab.analysis.importance`), most important first
``survival``                Kaplan-Meier time to divergence per factor level, with censoring
                            (:mod:`pinnlab.analysis.survival`): ``rows`` and ``curves``
``boundary``                critical value of each numeric factor per level of the top
                            categorical one, with a bootstrap interval (:mod:`~.boundary`)
==========================  =================================================================

Divergent means an outcome in ``divergent_outcomes`` (``Outcome.divergent``).  Levels are the factor's values, or bin ranges
for a sampled numeric range (:mod:`pinnlab.analysis.compare`).  ``table`` and ``markdown`` print
the same content as titled tables; ``csv`` prints one long table with a ``section`` column.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd

from pinnlab.analysis import boundary, compare, importance, survival
from pinnlab.analysis.causes import cause_totals, causes_by_factor
from pinnlab.analysis.frames import StudyData, load_study_data
from pinnlab.core.outcomes import DIVERGENT

__all__ = ["FORMATS", "build_report", "render_report", "report", "add_growth"]

FORMATS = ("table", "markdown", "csv", "json")
RANKING_LIMIT = 20  # stable trials listed in the text formats (json lists all)


def _py(value: Any) -> Any:
    """numpy / pandas scalars -> JSON values (NaN and NA -> None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _py(v) for k, v in row.items()} for row in frame.astype(object).to_dict(orient="records")]


def add_growth(data: StudyData) -> pd.DataFrame:
    """``data.trials`` with a ``weight_growth_rate`` column (from the history)."""
    trials = data.trials.copy()
    if data.history is not None and len(data.history):
        rates = compare.weight_growth(data.history)
        trials["weight_growth_rate"] = trials["trial"].map(rates).astype(float)
    else:
        trials["weight_growth_rate"] = float("nan")
    return trials


def build_report(data: StudyData) -> dict[str, Any]:
    """The report of a loaded study (see the module docstring)."""
    trials = add_growth(data)
    f, space = data.factors, data.space
    imp = importance.divergence_importance(trials, f, space)
    states = trials["state"].value_counts()
    return {
        "study": data.name,
        "storage": data.storage,
        "tracking_uri": data.tracking_uri,
        "parent_run_id": data.parent_run_id,
        "objective": {"metric": data.objective, "direction": data.direction},
        "factors": list(f),
        "divergent_outcomes": sorted(str(o) for o in DIVERGENT),
        "n_trials": int(len(trials)),
        "states": {str(k): int(v) for k, v in sorted(states.items())},
        "outcomes": compare.outcome_counts(trials),
        "overall": {k: _py(v) for k, v in compare.divergence_overall(trials).items()},
        "divergence_by_factor": _records(compare.divergence_by_factor(trials, f, space)),
        "divergence_by_pair": _records(compare.divergence_by_pair(trials, f, space)),
        "nan_onset": _records(compare.step_distribution(trials, f, "nan_onset_step", space)),
        "divergence_step": _records(compare.step_distribution(trials, f, "divergence_step", space)),
        "weight_growth": _records(compare.growth_by_group(trials, f, space)),
        "causes": {
            "found": cause_totals(trials),
            "known_before_training": cause_totals(trials, "known_causes"),
            "risks": cause_totals(trials, "risk_names"),
        },
        "causes_by_factor": _records(causes_by_factor(trials, f, space)),
        "stable_ranking": _records(compare.stable_ranking(trials, f, data.direction)),
        "importance": {
            "method": importance.METHOD,
            "justification": importance.JUSTIFICATION,
            "factors": _records(imp),
        },
        "survival": survival.survival_report(trials, f, space),
        "boundary": boundary.boundary_report(trials, f, space, imp["factor"].tolist()),
        "notes": list(data.notes),
    }


# ----------------------------------------------------------------------------------- rendering
def _sections(rep: dict[str, Any], limit: int | None) -> list[tuple[str, str, pd.DataFrame | str]]:
    """(key, title, table) for each section of the report; a sentence instead of a table with
    nothing in it."""
    ranking = pd.DataFrame(rep["stable_ranking"])
    if limit is not None:
        ranking = ranking.head(limit)
    if "mlflow_run_id" in ranking:
        ranking = ranking.drop(columns="mlflow_run_id")
    obj = rep["objective"]
    return [
        ("divergence_by_factor", "Divergence rate by factor", pd.DataFrame(rep["divergence_by_factor"])),
        ("divergence_by_pair", "Divergence rate by pair of factors", pd.DataFrame(rep["divergence_by_pair"])),
        (
            "nan_onset",
            "NaN onset step (levels where a trial went NaN)",
            _counted(rep["nan_onset"], "no trial went non-finite"),
        ),
        (
            "divergence_step",
            "Step at which divergence was detected (levels where a rule fired)",
            _counted(rep["divergence_step"], "no divergence rule fired in any trial"),
        ),
        (
            "weight_growth",
            "Weight growth rate: slope of ln ||W|| per step",
            _counted(rep["weight_growth"], "no trial has a weight-norm history"),
        ),
        (
            "causes_by_factor",
            "Causes found, trials per factor level (pinnlab.training.causes)",
            pd.DataFrame(rep["causes_by_factor"]),
        ),
        (
            "stable_ranking",
            f"Stable configurations by {obj['metric']} ({obj['direction']})",
            ranking,
        ),
        ("importance", "What drives divergence", pd.DataFrame(rep["importance"]["factors"])),
        (
            "survival",
            "Steps to divergence (Kaplan-Meier, non-divergent runs censored)",
            pd.DataFrame(rep["survival"]["rows"]),
        ),
        ("boundary", "Critical values: P(divergent) = 0.5", pd.DataFrame(rep["boundary"]["rows"])),
    ]


def _counted(rows: list[dict[str, Any]], nothing: str) -> pd.DataFrame | str:
    """A distribution table without its levels of ``count`` 0 (rows of dashes), or the sentence
    ``nothing`` when no trial has a value at all; the json format keeps every row."""
    frame = pd.DataFrame(rows)
    if frame.empty or not (frame["count"] > 0).any():
        return nothing
    return frame[frame["count"] > 0].reset_index(drop=True)


def _header(rep: dict[str, Any]) -> list[str]:
    o = rep["overall"]
    rate = "-" if o["rate"] is None else f"{o['rate']:.0%}"
    outcomes = ", ".join(f"{k} {v}" for k, v in rep["outcomes"].items()) or "-"
    states = ", ".join(f"{k} {v}" for k, v in rep["states"].items()) or "-"
    return [
        f"study {rep['study']}: {rep['n_trials']} trials ({states})",
        f"outcomes: {outcomes}",
        f"divergent ({'/'.join(rep['divergent_outcomes'])}): {o['diverged']} of {o['n']} judged trials ({rate})",
        f"optuna storage: {rep['storage']}",
        f"mlflow: {rep['tracking_uri'] or '-'} (parent run {rep['parent_run_id'] or '-'})",
        *[
            f"{title}: " + ", ".join(f"{k} {v}" for k, v in table.items())
            for title, table in (
                ("known before training", rep.get("causes", {}).get("known_before_training")),
                ("causes found", rep.get("causes", {}).get("found")),
                ("risks (in trials that worked)", rep.get("causes", {}).get("risks")),
            )
            if table
        ],
        *[f"note: {n}" for n in rep["notes"]],
    ]


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e6 else f"{v:.3g}"  # steps print whole
    return str(v)


_LEVEL_COLUMNS = ("level", "level_a", "level_b")


def _cells(frame: pd.DataFrame) -> list[list[str]]:
    """The rows of ``frame`` as text; levels as :func:`compare.level_label` writes them everywhere."""
    fmt = [compare.level_label if c in _LEVEL_COLUMNS else _cell for c in frame.columns]
    return [[f(v) for f, v in zip(fmt, row)] for row in frame.itertuples(index=False)]


def _text_table(frame: pd.DataFrame | str) -> str:
    if isinstance(frame, str):
        return frame
    if frame.empty:
        return "(none)"
    cells = [[str(c) for c in frame.columns]] + _cells(frame)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame | str) -> str:
    if isinstance(frame, str):
        return frame
    if frame.empty:
        return "(none)"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in _cells(frame)]
    return "\n".join([head, rule, *body])


def render_report(rep: dict[str, Any], fmt: str = "table") -> str:
    """The report as ``table`` (aligned text), ``markdown``, ``csv`` or ``json``."""
    import json

    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {', '.join(FORMATS)}, but got {fmt!r}.")
    if fmt == "json":
        return json.dumps(rep, indent=2)
    if fmt == "csv":
        parts = []
        for key, _, frame in _sections(rep, None):
            if isinstance(frame, pd.DataFrame) and not frame.empty:  # a sentence: nothing to list
                parts.append(frame.assign(section=key)[["section", *frame.columns]])
        buf = io.StringIO()
        if parts:
            # sections have different columns; keep counts integers where concat's NaN fill made floats
            ints = {c for f in parts for c in f.columns if pd.api.types.is_integer_dtype(f[c])}
            columns = list(dict.fromkeys(c for f in parts for c in f.columns))
            # a section's all-empty column is left to the reindex (concat's dtype rule for them changes)
            table = pd.concat([f.dropna(axis=1, how="all") for f in parts], ignore_index=True).reindex(columns=columns)
            table = table.astype({c: "Int64" for c in ints if pd.api.types.is_float_dtype(table[c])})
            table.to_csv(buf, index=False)
        return buf.getvalue()
    md = fmt == "markdown"
    out = []
    if md:
        out += [f"# Divergence report: {rep['study']}", "", *[f"- {line}" for line in _header(rep)]]
    else:
        out += _header(rep)
    imp = rep["importance"]
    for key, title, frame in _sections(rep, RANKING_LIMIT):
        out += ["", f"## {title}" if md else f"== {title}", ""]
        if key == "importance":
            out += [f"Method: {imp['method']}.", imp["justification"], ""]
        out.append(_markdown_table(frame) if md else _text_table(frame))
    return "\n".join(out) + "\n"


def report(study_name: str, storage: str | None = None, tracking_uri: str | None = None, fmt: str = "table") -> str:
    """Load the study, build and render its report (``pinnlab report``)."""
    data = load_study_data(study_name, storage, tracking_uri, metrics=[compare.GROWTH_METRIC])
    return render_report(build_report(data), fmt)
