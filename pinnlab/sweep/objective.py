"""One trial: sample a config, train it with tracking, judge it, keep divergence as data.

* stable / silent_failure -> COMPLETE with the objective value (outcome in the user attributes);
* diverging / nan / blowup / unbounded (Outcome.divergent) -> the objective's last finite value is reported and the trial is
  PRUNED: the sampler learns from pruned trials (TPE ranks them below completed ones), whereas a
  FAIL trial would be ignored;
* stopped by the Optuna pruner -> PRUNED;
* every judged trial also gets an Optuna constraint, ``divergence`` = its divergence rate when
  divergent (1 for one run; a set of replicates: the share of its seeds that diverged), else 0: a
  sampler that reads constraints (TPE) counts the divergent trials as infeasible and ranks them
  last, instead of by the last finite value they reported before they ran away;
* an exception -> FAIL with user attribute ``error`` (``Type: first line``; the study goes on);
* a trial that did not come from the queue of budget slots (its worker lost the race for the last
  one, see :mod:`pinnlab.sweep.study`) -> FAIL with user attribute ``surplus``, before any training;
* KeyboardInterrupt (SIGTERM / SIGINT through :class:`pinnlab.core.signals.Terminate`, passed in
  ``callbacks``) -> FAIL, MLflow run KILLED; the trial number is kept in ``interrupted`` for the
  worker's recovery.

Each trial records the worker running it (user attribute ``worker``, ``host:pid``).

Every trial is an MLflow child run of the study's parent run; the two are cross-linked: trial user
attribute ``mlflow_run_id``, run tags ``study`` and ``trial``.
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from typing import Any

import optuna

from pinnlab.config.replicates import aggregate, group_key, stackable
from pinnlab.core import keys
from pinnlab.core.errors import first_line
from pinnlab.core.keys import BATCH_ATTR, MLFLOW_RUN_ID, SLOT_ATTR, STUDY_TAG, SURPLUS_ATTR, TRIAL_TAG, WORKER_ATTR
from pinnlab.core.outcomes import Outcome
from pinnlab.core.summary import TRIAL_ATTRS
from pinnlab.runs import Tracking, run_config, run_replicas, run_replicates
from pinnlab.sweep.recovery import worker_id
from pinnlab.sweep.space import suggest
from pinnlab.sweep.spec import SweepSpec
from pinnlab.training import Callback, StopTraining

DIVERGENCE_CONSTRAINT = "divergence"  # the Optuna constraint of a divergent trial (> 0: infeasible)

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
        # number of the trial a KeyboardInterrupt stopped (a list: the unfinished trials of a batch)
        self.interrupted: int | list[int] | None = None
        self.batch_ends: dict[int, tuple[float | None, Any]] = {}

    def __call__(self, trial: optuna.Trial) -> float:
        return self._guarded(trial, lambda: self._finish(self._prepare(trial)))

    def _guarded(self, trial: optuna.Trial, work):
        try:
            return work()
        except KeyboardInterrupt:
            self.interrupted = trial.number
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # a crash: FAIL, and the reason stays with the trial
            trial.set_user_attr("error", f"{type(exc).__name__}: {first_line(exc)}")
            raise

    def _prepare(self, trial: optuna.Trial) -> Job:
        """The trial's config, callbacks and tracking; nothing trained yet."""
        if SLOT_ATTR not in trial.user_attrs:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise Surplus("every slot of the budget was taken when this worker asked; not run")
        trial.set_user_attr(WORKER_ATTR, worker_id())
        spec = self.spec
        params = suggest(trial, spec.space)
        cfg = spec.trial_config(params)
        own: list[Callback] = []
        if spec.pruner.name != "none":
            own.append(_Pruning(trial, spec.pruner.metric))
        tags = {STUDY_TAG: spec.study_name, TRIAL_TAG: str(trial.number), **{k: str(v) for k, v in params.items()}}
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
        return Job(trial, cfg, own, tags, tracking)

    def _finish(self, job: Job, run=None) -> float:
        """Train the job unless ``run`` (its batch's) is given; judge the result (module docstring)."""
        spec = self.spec
        trial = job.trial
        if spec.replicates > 1:  # k seeds, one verdict (pinnlab.config.replicates)
            return self._finish_seeds(job)
        if run is None:
            run = run_config(
                job.cfg,
                tracking=job.tracking,
                callbacks=[*job.callbacks, *self.callbacks],
                on_start=job.on_start,
                reuse=True,  # trials of one worker share built trainers when only seeds, rates, weights differ
            )
        result = run.result
        summary = result.summary()
        for key in TRIAL_ATTRS:
            trial.set_user_attr(key, summary.get(key))
        trial.set_user_attr("warnings", summary["warnings"])
        trial.set_constraint(DIVERGENCE_CONSTRAINT, 1.0 if result.diverged else 0.0)
        value = objective_value(summary, spec.objective.metric)
        if result.diverged or result.stopped_by:
            if value is not None:
                trial.report(value, result.steps_run)
            raise optuna.TrialPruned(result.stopped_by or f"{result.outcome}: {result.reason}")
        if value is None:
            raise optuna.TrialPruned(f"objective {spec.objective.metric!r} has no finite value")
        return value

    def _finish_seeds(self, job: Job) -> float:
        """Train the job's config on ``spec.replicates`` seeds (stacked), record them on its trial,
        and return the median objective (or raise TrialPruned: :func:`pinnlab.config.replicates.aggregate`'s
        rule; MLflow, one run per seed: the module docstring of :mod:`pinnlab.config.replicates`)."""

        spec, trial, cfg, tags = self.spec, job.trial, job.cfg, job.tags
        callbacks = [*job.callbacks, *self.callbacks]

        def tracking(i: int, seed_cfg) -> Tracking | None:
            if not self.track:
                return None
            return Tracking(
                tracking_uri=self.tracking_uri,
                experiment=self.experiment,
                parent_run_id=self.parent_run_id,
                tags={**tags, keys.REPLICATE_TAG: str(i)},
                run_name=f"{spec.study_name}-trial-{trial.number}-seed-{seed_cfg.training.seed}",
                plots=False,  # as for single-seed trials: `pinnlab plots RUN_ID` draws them on demand
            )

        runs = run_replicates(cfg, spec.replicates, callbacks, tracking=tracking, reuse=True)
        results = [r.result for r in runs]
        ids = [r.mlflow_run_id for r in runs] if self.track else []
        summaries = [r.summary() for r in results]
        values = [objective_value(s, spec.objective.metric) for s in summaries]
        verdict = aggregate(
            summaries,
            values,
            [r.config.training.seed for r in results],
            ids,
            replicate_rate=cfg.divergence.replicate_rate,
        )
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
        trial.set_constraint(
            DIVERGENCE_CONSTRAINT, float(attrs[keys.DIVERGENCE_RATE_ATTR]) if verdict["divergent"] else 0.0
        )
        diverged = sum(Outcome(o).divergent for o in attrs[keys.REPLICATE_OUTCOMES_ATTR])
        if verdict["divergent"]:
            median = verdict["value"]
            if median is not None:
                trial.report(median, int(rep.get("steps_run") or 0))
            raise optuna.TrialPruned(f"{diverged} of {len(results)} seeds diverged")
        if verdict["value"] is None:
            raise optuna.TrialPruned(
                f"objective {spec.objective.metric!r} has no finite value on the non-divergent seeds"
            )
        return float(verdict["value"])

    def run_batch(self, trials: Sequence[optuna.Trial]) -> None:
        """Run asked ``trials`` together: those whose configs share a :func:`pinnlab.config.replicates.group_key`
        train as replicates of one stacked training, each with its own hyperparameters, MLflow run
        and pruner; the others alone.  Each trial's ``(value, state)`` for ``study.tell`` goes into
        ``batch_ends`` as it ends (a KeyboardInterrupt propagates, with the batch's unfinished
        trials in ``interrupted``)."""
        from optuna.trial import TrialState

        self.batch_ends = out = {}  # trial number -> (value, state), as the trials end

        def settle(trial, work):
            """``work()``'s value, or None with the trial's end (PRUNED, FAIL) recorded in ``out``."""
            try:
                return self._guarded(trial, work)
            except optuna.TrialPruned:
                out[trial.number] = (None, TrialState.PRUNED)
            except KeyboardInterrupt:
                self.interrupted = [t.number for t in trials if t.number not in out]
                raise
            except Exception:
                out[trial.number] = (None, TrialState.FAIL)
            return None

        def complete(job, work) -> None:
            value = settle(job.trial, work)
            if value is not None:
                out[job.trial.number] = (value, TrialState.COMPLETE)

        jobs = [job for trial in trials if (job := settle(trial, lambda trial=trial: self._prepare(trial)))]
        groups: dict[str, list[Job]] = {}
        for job in jobs:
            alone = self.spec.replicates > 1 or not stackable(job.cfg)
            groups.setdefault(f"alone-{job.trial.number}" if alone else group_key(job.cfg), []).append(job)
        for group in groups.values():
            if len(group) == 1:
                complete(group[0], lambda job=group[0]: self._finish(job))
                continue
            try:
                runs = self._train_group(group)
            except KeyboardInterrupt:
                self.interrupted = [t.number for t in trials if t.number not in out]
                raise
            except Exception as exc:  # the group's training failed: every trial in it FAILs with its error
                for job in group:
                    complete(job, lambda exc=exc: _raise(exc))
                continue
            for job, run in zip(group, runs):
                complete(job, lambda job=job, run=run: self._finish(job, run))

    def _train_group(self, group: list[Job]):

        cfgs = [job.cfg for job in group]
        for job in group:
            job.trial.set_user_attr(BATCH_ATTR, [j.trial.number for j in group])
        return run_replicas(
            cfgs[0].model_copy(update={"training": cfgs[0].training.model_copy(update={"replicates": len(cfgs)})}),
            [job.tracking for job in group],
            callbacks=self.callbacks,
            replica_configs=cfgs,
            replica_callbacks=[job.callbacks for job in group],
            on_start=[job.on_start for job in group],
        )


def _raise(exc: Exception):
    raise exc


class Job(types.SimpleNamespace):
    """A prepared trial: its config, its own callbacks (the pruner), MLflow tags and tracking."""

    def __init__(self, trial, cfg, callbacks, tags, tracking):
        super().__init__(trial=trial, cfg=cfg, callbacks=callbacks, tags=tags, tracking=tracking)

    def on_start(self, run_id: str) -> None:
        self.trial.set_user_attr(MLFLOW_RUN_ID, run_id)
