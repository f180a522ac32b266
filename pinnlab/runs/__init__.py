"""Run one configuration, with or without MLflow tracking: the single path from a RunConfig to a
recorded result, shared by ``pinnlab run``, every sweep trial and every reproduction run.

    run_config(cfg, tracking=Tracking(experiment="pinnlab", tags=...), callbacks=[...]) -> Run

The trainer knows nothing of MLflow; this function composes it with the tracking callback, opens the
MLflow run before the first step (so a run killed mid-training is recorded as KILLED, not lost) and
closes it after the last, and returns the result with the run id.  ``tracking=None`` trains without
recording anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinnlab.backend import import_tensorflow
from pinnlab.config import apply_overrides, validate_config
from pinnlab.config.replicates import replicate_config, stackable
from pinnlab.core.keys import MLFLOW_RUN_ID
from pinnlab.core.signals import on_abort
from pinnlab.tracking import RunTracker

__all__ = ["Tracking", "Run", "run_config", "run_replicas", "run_replicates"]


@dataclass(frozen=True)
class Tracking:
    """Where and how a run is recorded in MLflow (see :class:`pinnlab.tracking.RunTracker`)."""

    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI, PINNLAB_HOME or ./pinnlab-runs
    experiment: str = "pinnlab"
    parent_run_id: str | None = None  # record as a child run (sweeps, reproductions)
    tags: Mapping[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    plots: bool = True  # PNG plots of the history as artifacts
    # draw them on a background thread once the run is recorded (pinnlab.tracking.background):
    # off by default so a library caller finds them logged when run_config returns
    background_plots: bool = False


@dataclass
class Run:
    """A finished run: the result, the trainer (weights, predictions) and the MLflow run, if any."""

    result: Any  # pinnlab.training.RunResult
    trainer: Any  # pinnlab.training.Trainer
    tracker: Any = None  # pinnlab.tracking.RunTracker, or None when not tracked

    @property
    def mlflow_run_id(self) -> str | None:
        return None if self.tracker is None else self.tracker.run_id

    def summary(self) -> dict[str, Any]:
        """The result's summary plus ``mlflow_run_id`` when tracked (``pinnlab run --json``)."""
        out = self.result.summary()
        if self.tracker is not None:
            out[MLFLOW_RUN_ID] = self.tracker.run_id
        return out


def _tracker(cfg, tracking: Tracking | None):
    if tracking is None:
        return None

    return RunTracker(
        cfg,
        tracking_uri=tracking.tracking_uri,
        experiment=tracking.experiment,
        parent_run_id=tracking.parent_run_id,
        tags=dict(tracking.tags),
        run_name=tracking.run_name,
        plots=tracking.plots,
        background_plots=tracking.background_plots,
    )


def run_config(
    cfg,
    *,
    tracking: Tracking | None = None,
    callbacks: Sequence[Any] = (),
    on_start: Callable[[str], None] | None = None,
    prepare: Callable[[Any], None] | None = None,
    guard: contextlib.AbstractContextManager | None = None,
    reuse: bool = False,
) -> Run:
    """Train ``cfg`` (a validated RunConfig) and return the :class:`Run`.

    ``on_start(run_id)`` is called once the MLflow run exists (a sweep links its trial to it);
    ``prepare(trainer)`` runs after the trainer is built and before training (a warm start, a look at
    the initial state); ``guard`` is entered around training (e.g. a signal handler's deferral
    window); ``reuse``: a built trainer of an earlier run of this process may be reset and reused when
    only seeds, learning rate, loss weights or budget differ (sweep trials, :mod:`pinnlab.training.reuse`).
    An exception inside ends the MLflow run FAILED (KILLED for an interrupt) and
    propagates.
    """
    from pinnlab.training import build_trainer

    tracker = _tracker(cfg, tracking)
    # open work for the stop watchdog (pinnlab.core.signals.on_abort): it may end the process anywhere
    # in here, tracked or not, once the grace passed; the tracker's own action ends its run KILLED
    with tracker or contextlib.nullcontext(), guard or contextlib.nullcontext(), on_abort(lambda: None):
        if tracker is not None and on_start is not None:
            on_start(tracker.run_id)
        trainer = build_trainer(cfg, [*callbacks, *([tracker] if tracker is not None else [])], reuse=reuse)
        if prepare is not None:
            prepare(trainer)
        result = trainer.fit()
    return Run(result=result, trainer=trainer, tracker=tracker)


def run_replicas(
    cfg,
    trackings: Sequence[Tracking | None],
    *,
    callbacks: Sequence[Any] = (),
    guard: contextlib.AbstractContextManager | None = None,
    replica_configs: Sequence[Any] | None = None,
    replica_callbacks: Sequence[Sequence[Any]] | None = None,
    on_start: Sequence[Callable[[str], None]] | None = None,
) -> list[Run]:
    """Train ``cfg``'s ``training.replicates`` replicates in one stacked training, each recorded as
    a run of its own (``trackings[r]``: replicate r's MLflow run, None for untracked): one
    :class:`Run` per replicate, its result that replicate's.  ``callbacks`` hear the training as one
    run (replicate 0, then the combined result); ``replica_callbacks[r]`` hear replicate r alone
    (a StopTraining from one of them stops only it).  ``replica_configs``: the replicates' own
    configs (a sweep's batch of trials; default: ``cfg`` with seeds ``seed + r``); ``on_start[r]``
    is called with replicate r's MLflow run id once it exists."""
    configs = list(replica_configs or [replicate_config(cfg, r) for r in range(len(trackings))])
    trackers = [_tracker(c, t) for c, t in zip(configs, trackings)]
    own = [list(c) for c in (replica_callbacks or [[] for _ in configs])]
    with contextlib.ExitStack() as stack:
        for r, tracker in enumerate(trackers):
            if tracker is not None:
                stack.enter_context(tracker)
                own[r].append(tracker)
                if on_start is not None:
                    on_start[r](tracker.run_id)
        stack.enter_context(guard or contextlib.nullcontext())
        stack.enter_context(on_abort(lambda: None))

        import_tensorflow()  # first, so its start-up notices are dropped (pinnlab.backend)
        from pinnlab.training.trainer import Trainer

        trainer = Trainer(cfg, callbacks, own, replica_configs=configs if replica_configs else None)
        combined = trainer.fit()
    return [Run(result=res, trainer=trainer, tracker=t) for res, t in zip(combined.replicate_results, trackers)]


def run_replicates(
    cfg,
    k: int,
    callbacks: Sequence[Any] = (),
    *,
    tracking: Callable[[int, Any], Any] | None = None,
    reuse: bool = False,
) -> list[Any]:
    """Train ``cfg`` on the seeds ``training.seed + i``, i < k; returns their :class:`Run`
    in order, each seed its own run (its own MLflow run when tracked).

    The k seeds train together on the trainer's replica axis (:func:`run_replicas`), one
    compiled step for all; a config the axis cannot take (:func:`pinnlab.config.replicates.check_replicates`: L-BFGS, a
    residual that is not row-wise) trains them one after another through
    :func:`run_config`, which reuses seed 0's built trainer (``reuse``).
    ``callbacks``: trainer callbacks of the whole training (a signal handler).  ``tracking(i, cfg_i)``:
    the :class:`Tracking` of seed i, or None for an untracked seed.  A seed that
    diverges ends only its own run; the others go on.
    """
    if k < 1:
        raise ValueError(f"`k >= 1` must hold, but got ({k=}).")
    seeds = [replicate_config(cfg, i) for i in range(k)]
    trackings = [tracking(i, c) if tracking is not None else None for i, c in enumerate(seeds)]
    if k > 1 and stackable(cfg):
        stacked = validate_config(apply_overrides(cfg.to_dict(), [("training.replicates", k)]))
        return run_replicas(stacked, trackings, callbacks=callbacks)
    return [run_config(c, tracking=t, callbacks=callbacks, reuse=reuse) for c, t in zip(seeds, trackings)]
