"""One trial: sample a config, train it with tracking, judge it, keep divergence as data.

* stable / silent_failure -> COMPLETE with the objective value (outcome in the user attributes);
* diverging / nan / blowup / unbounded (Outcome.divergent) -> the objective's last finite value is reported and the trial is
  PRUNED: the sampler learns from pruned trials (TPE ranks them below completed ones), whereas a
  FAIL trial would be ignored;
* stopped by the Optuna pruner -> PRUNED;
* an exception -> FAIL with user attribute ``error`` (``Type: first line``; the study goes on);
* a trial that did not come from the queue of budget slots (its worker lost the race for the last
  one, see :mod:`pinnlab.sweep.study`) -> FAIL with user attribute ``surplus``, before any training;
* KeyboardInterrupt (SIGTERM / SIGINT through :class:`pinnlab.signals.Terminate`, passed in
  ``callbacks``) -> FAIL, MLflow run KILLED; the trial number is kept in ``interrupted`` for the
  worker's recovery.

Each trial records the worker running it (user attribute ``worker``, ``host:pid``).

Every trial is an MLflow child run of the study's parent run; the two are cross-linked: trial user
attribute ``mlflow_run_id``, run tags ``study`` and ``trial``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna

from pinnlab.errors import first_line
from pinnlab.keys import MLFLOW_RUN_ID, SLOT_ATTR, STUDY_TAG, SURPLUS_ATTR, TRIAL_TAG, WORKER_ATTR
from pinnlab.sweep.recovery import worker_id
from pinnlab.sweep.space import suggest
from pinnlab.sweep.spec import SweepSpec
from pinnlab.runs import Tracking, run_config
from pinnlab.summary import TRIAL_ATTRS
from pinnlab.training import Callback, StopTraining

__all__ = ["Objective", "objective_value", "Surplus"]

def objective_value(summary: dict[str, Any], metric: str) -> float | None:
    """The objective metric of a finished run, or None if it has no finite value."""
    value = summary.get(metric)
    if value is None:
        value = summary.get("final_metrics", {}).get(metric)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class _Pruning(Callback):
    """Reports the pruner's metric at diagnostics steps; asks Optuna whether to stop."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.last: dict[str, float] = {}

    def on_step(self, step, metrics):
        self.last = metrics

    def on_diagnostics(self, step, metrics):
        value = metrics.get(self.metric, self.last.get(self.metric))
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise StopTraining(f"pruned by the {type(self.trial.study.pruner).__name__} at step {step}")


class Surplus(RuntimeError):
    """The trial was not taken from the queue of budget slots: the budget is already in flight."""


class Objective:
    """Callable for ``study.optimize``; picklable state only (used in worker processes).

    ``callbacks``: extra trainer callbacks of every trial (the worker's signal handler).
    """

    def __init__(
        self,
        spec: SweepSpec,
        *,
        tracking_uri: str | None,
        experiment: str,
        parent_run_id: str | None,
        track: bool = True,
        callbacks: Sequence[Callback] = (),
    ):
        self.spec = spec
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.track = track
        self.callbacks = list(callbacks)
        self.interrupted: int | None = None  # number of the trial a KeyboardInterrupt stopped

    def __call__(self, trial: optuna.Trial) -> float:
        if SLOT_ATTR not in trial.user_attrs:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise Surplus("every slot of the budget was taken when this worker asked; not run")
        trial.set_user_attr(WORKER_ATTR, worker_id())
        try:
            return self._run(trial)
        except KeyboardInterrupt:
            self.interrupted = trial.number
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # a crash: FAIL, and the reason stays with the trial
            trial.set_user_attr("error", f"{type(exc).__name__}: {first_line(exc)}")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        spec = self.spec
        params = suggest(trial, spec.space)
        cfg = spec.trial_config(params)
        callbacks: list[Callback] = []
        if spec.pruner.name != "none":
            callbacks.append(_Pruning(trial, spec.pruner.metric))
        callbacks += self.callbacks
        tags = {STUDY_TAG: spec.study_name, TRIAL_TAG: str(trial.number), **{k: str(v) for k, v in params.items()}}
        if spec.replicates > 1:  # k seeds, one verdict: pinnlab.sweep.replicate_trial
            from pinnlab.sweep.replicate_trial import run_trial

            return run_trial(self, trial, cfg, callbacks, tags)
        tracking = None
        if self.track:
            tracking = Tracking(
                tracking_uri=self.tracking_uri,
                experiment=self.experiment,
                parent_run_id=self.parent_run_id,
                tags=tags,
                run_name=f"{spec.study_name}-trial-{trial.number}",
                # a 50-step trial trains in about the time its plots take: on demand, `pinnlab plots RUN_ID`
                plots=False,
            )
        result = run_config(
            cfg,
            tracking=tracking,
            callbacks=callbacks,
            on_start=lambda run_id: trial.set_user_attr(MLFLOW_RUN_ID, run_id),
            reuse=True,  # trials of one worker share built trainers when only seeds, rates, weights differ
        ).result
        summary = result.summary()
        for key in TRIAL_ATTRS:
            trial.set_user_attr(key, summary.get(key))
        trial.set_user_attr("warnings", summary["warnings"])
        value = objective_value(summary, spec.objective.metric)
        if result.diverged or result.stopped_by:
            if value is not None:
                trial.report(value, result.steps_run)
            raise optuna.TrialPruned(result.stopped_by or f"{result.outcome}: {result.reason}")
        if value is None:
            raise optuna.TrialPruned(f"objective {spec.objective.metric!r} has no finite value")
        return value
