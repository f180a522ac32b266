"""Analysis of a sweep: which factors make training diverge, how soon, and what stays stable.

Data flow: Optuna trials (:mod:`pinnlab.sweep.read`) ⨝ MLflow child runs (:mod:`pinnlab.tracking`)
-> tidy pandas frames (:mod:`~pinnlab.analysis.frames`) -> comparisons (:mod:`~pinnlab.analysis.compare`)
and importance (:mod:`~pinnlab.analysis.importance`) -> the report (:mod:`~pinnlab.analysis.report`,
``pinnlab report``) and the dashboards (``dashboards/``, ``pinnlab dashboard``).  Nothing here
imports optuna or mlflow.  See docs/analysis.md.

::

    from pinnlab.analysis import trials_frame, history_frame, divergence_by_factor
    trials = trials_frame("seed_divergence")
    divergence_by_factor(trials, ["model.activation", "loss.formulation"])
"""

from __future__ import annotations

from pinnlab.analysis.compare import (
    divergence_by_factor,
    divergence_by_pair,
    divergence_overall,
    factor_levels,
    growth_by_group,
    outcome_counts,
    stable_ranking,
    step_distribution,
    weight_growth,
)
from pinnlab.analysis.frames import (
    StudyData,
    history_frame,
    load_study_data,
    trials_frame,
)
from pinnlab.analysis.importance import divergence_importance, top_factors
from pinnlab.analysis.report import FORMATS, build_report, render_report, report

__all__ = [
    "FORMATS",
    "StudyData",
    "build_report",
    "divergence_by_factor",
    "divergence_by_pair",
    "divergence_importance",
    "divergence_overall",
    "factor_levels",
    "growth_by_group",
    "history_frame",
    "load_study_data",
    "outcome_counts",
    "render_report",
    "report",
    "stable_ranking",
    "step_distribution",
    "top_factors",
    "trials_frame",
    "weight_growth",
]
