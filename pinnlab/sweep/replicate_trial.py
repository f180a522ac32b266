"""One sweep trial trained on ``replicates: k`` seeds (the rules are in :mod:`pinnlab.replicates`).

MLflow: one run per seed
------------------------
Every seed is its own MLflow run, a child of the study's parent run like any trial's run, tagged
``trial=<number>`` and ``replicate=<i>`` (its ``training.seed`` is a param).  Why runs and not
per-seed metrics inside one trial run: a seed is a whole training with its own per-step history
(``history.csv``), outcome tags and plots, and the metric keys stay exactly those of a single run
(``loss/total``, not ``seed2/loss/total``), so every reader of runs works on a seed unchanged.  Why
siblings under the study's run and not a third level (trial run -> seed runs): the recovery of a
dead or stopped worker closes the RUNNING children of the study's run by their ``trial`` tag
(:mod:`pinnlab.sweep.recovery`), and the analysis joins trials to children of that run; a nested
level would leave a killed seed's run RUNNING and be invisible to both.  In the MLflow UI, group
the study's runs by the ``trial`` tag to see a trial's seeds together.  The trial's
``mlflow_run_id`` is its representative seed's run; ``replicate_run_ids`` lists them all.

The Optuna pruner
-----------------
The seeds train together, stacked on the trainer's replica axis (one compiled step for all k;
:func:`pinnlab.replicates.run_replicates`).  A divergent seed stops itself (the trainer's divergence
monitor ends that replicate at detection and freezes it, as a single trial would end) while the
others go on: divergence is what is being counted, so one divergent seed never stops the trial.  An Optuna pruner (``pruner: median | halving``) is refused with
``replicates > 1`` (:func:`pinnlab.sweep.spec.load_sweep`): it would stop seeds on their loss
curve, censoring them at arbitrary steps and biasing both the divergence rate and the survival
curves, and k seeds would report k values for one step of one trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from pinnlab import keys
from pinnlab.outcomes import Outcome
from pinnlab.replicates import aggregate, run_replicates

__all__ = ["run_trial"]


def run_trial(objective, trial: optuna.Trial, cfg, callbacks: Sequence[Any], tags: dict[str, str]) -> float:
    """Train ``cfg`` on ``objective.spec.replicates`` seeds, record them on ``trial``, and return
    the median objective (or raise TrialPruned: :func:`pinnlab.replicates.aggregate`'s rule).

    ``objective`` is the calling :class:`pinnlab.sweep.objective.Objective` (its tracking settings).
    """
    from pinnlab.runs import Tracking
    from pinnlab.sweep.objective import TRIAL_ATTRS, objective_value

    spec = objective.spec

    def tracking(i: int, seed_cfg) -> Tracking | None:
        if not objective.track:
            return None
        return Tracking(
            tracking_uri=objective.tracking_uri,
            experiment=objective.experiment,
            parent_run_id=objective.parent_run_id,
            tags={**tags, keys.REPLICATE_TAG: str(i)},
            run_name=f"{spec.study_name}-trial-{trial.number}-seed-{seed_cfg.training.seed}",
            plots=False,  # as for single-seed trials: `pinnlab plots RUN_ID` draws them on demand
        )

    runs = run_replicates(cfg, spec.replicates, callbacks, tracking=tracking, reuse=True)
    results = [r.result for r in runs]
    ids = [r.mlflow_run_id for r in runs] if objective.track else []
    summaries = [r.summary() for r in results]
    values = [objective_value(s, spec.objective.metric) for s in summaries]
    verdict = aggregate(summaries, values, [r.config.training.seed for r in results], ids,
                        replicate_rate=cfg.divergence.replicate_rate)
    rep = summaries[verdict["representative"]]
    for key in TRIAL_ATTRS:
        trial.set_user_attr(key, rep.get(key))
    trial.set_user_attr("outcome", str(verdict["outcome"]))
    trial.set_user_attr("warnings", sorted({w for s in summaries for w in s["warnings"]}))
    if ids:
        trial.set_user_attr(keys.MLFLOW_RUN_ID, ids[verdict["representative"]])
    for key, value in verdict["attrs"].items():
        trial.set_user_attr(key, value)
    attrs = verdict["attrs"]
    diverged = sum(Outcome(o).divergent for o in attrs[keys.REPLICATE_OUTCOMES_ATTR])
    if verdict["divergent"]:
        median = verdict["value"]
        if median is not None:
            trial.report(median, int(rep.get("steps_run") or 0))
        raise optuna.TrialPruned(f"{diverged} of {len(results)} seeds diverged")
    if verdict["value"] is None:
        raise optuna.TrialPruned(f"objective {spec.objective.metric!r} has no finite value on the non-divergent seeds")
    return float(verdict["value"])
