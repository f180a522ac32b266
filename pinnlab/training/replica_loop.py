"""The loop of stacked replicates: one compiled step for all, one :class:`Recorder` per replicate.

Each replicate's numbers go to its own :class:`~pinnlab.training.recorder.Recorder` (history,
divergence monitor, NaN bookkeeping, its :class:`RunResult`), through a :class:`ReplicaView` that
shows the recorder what it reads of a trainer (config with that replicate's seed, step names,
weights, end-of-run evaluations), so the outcome rules are the single run's, not a copy of them.
When a recorder says stop (a verdict with ``divergence.stop_early``), or the replicate's step went
non-finite, the replicate is frozen and the others go on; the loop ends when none is left.

Callbacks (progress bar, MLflow tracker, a sweep's pruner) hear the run once, not k times: they get
the metrics of replicate 0 (the base seed, i.e. what ``replicates: 1`` would report) while it runs,
and at the end the combined result.  A ``StopTraining`` from a callback stops every replicate.

The combined result (:func:`combine`): a :class:`RunResult` whose ``replicates`` lists every seed's
outcome, onsets, final loss and error, and whose top-level fields summarise them:

* ``outcome`` and ``divergence_rate``: :func:`pinnlab.replicates.verdict`, the rule a sweep trial's
  seeds follow too: divergent when at least ``divergence.replicate_rate`` of the replicates diverged,
  the outcome the most common one on that side;
* ``nan_onset_step``, ``divergence_step``: the earliest over replicates (``first_nonfinite`` of that
  replicate); ``steps_run``: the most;
* losses, norms, errors and held-out residuals: the median over replicates with a finite value;
* ``history`` and ``final_metrics``: replicate 0's (the tracker logs it as the run's history; every
  replicate's result is kept in ``replicate_results``).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from pinnlab.replicates import verdict
from pinnlab.training.callbacks import StopTraining
from pinnlab.training.recorder import Recorder
from pinnlab.training.result import RunResult

if TYPE_CHECKING:
    from pinnlab.training.replicas import ReplicaTrainer

__all__ = ["ReplicaLoop", "ReplicaView", "combine"]

class ReplicaView:
    """Replicate ``r`` of a :class:`ReplicaTrainer`, as a :class:`Recorder` sees a trainer."""

    def __init__(self, trainer: ReplicaTrainer, r: int):
        self.parent = trainer
        self.r = r
        self.cfg = trainer.configs[r]
        self.callbacks: list = []  # the loop calls the run's callbacks once, not per replicate
        self.step_names = trainer.step_names
        self.terms = trainer.terms
        self.warnings = trainer.warnings

    @property
    def vars(self):
        return self.parent.replica_vars(self.r)

    def rel_l2_error(self):
        return self.parent.final_evaluations()["rel_l2"][self.r]

    def heldout_residual(self):
        return self.parent.final_evaluations()["heldout"][self.r]


class ReplicaLoop:
    """Runs a :class:`ReplicaTrainer` for its budget and returns the combined :class:`RunResult`."""

    def __init__(self, trainer: ReplicaTrainer):
        self.trainer = trainer
        self.budget = trainer.steps_budget

    def run(self) -> RunResult:
        t = self.trainer
        cfg = t.cfg
        t0 = time.perf_counter()
        recorders = [Recorder(ReplicaView(t, r), self.budget, unit="step") for r in range(t.k)]
        callbacks = t.callbacks
        for cb in callbacks:
            cb.on_train_begin(t)
        every = cfg.diagnostics.every
        live = list(range(t.k))
        batches = t.batches()
        n = len(t.step_names)
        stopped_by = None
        for step in range(self.budget):
            points = next(batches)
            diag = t.diagnostics(points) if step % every == 0 else None
            ts = time.perf_counter()
            vecs = t._step(points).numpy()
            if step == 0:
                for rec in recorders:
                    rec.compile_seconds = time.perf_counter() - ts
            ratios = t.update_ratios() if diag is not None and cfg.diagnostics.update_ratio else None
            ended = []
            for r in live:
                vec, d = vecs[r], None if diag is None else diag[r]
                if not np.isfinite(vec).all():
                    recorders[r].nonfinite(step, t.locate_nonfinite(r, points, vec), vec, d)
                    ended.append(r)
                    continue
                if ratios is not None:
                    d.update(ratios[r])
                if not recorders[r].record(step, vec, d):
                    ended.append(r)
            if 0 in live and recorders[0].nan_step is None:  # replicate 0 recorded this step
                try:
                    if diag is not None:
                        for cb in callbacks:
                            cb.on_diagnostics(step, diag[0])
                    if callbacks:
                        metrics = dict(zip(t.step_names, vecs[0][:n].tolist()))
                        for cb in callbacks:
                            cb.on_step(step, metrics)
                except StopTraining as stop:
                    stopped_by = str(stop)
            if stopped_by is not None:
                for r in live:
                    if r not in ended:
                        recorders[r].stopped_by = stopped_by
                break
            if ended:
                frozen = [r for r in ended if recorders[r].nan_step is None]  # NaN ones are frozen already
                if frozen:
                    t.freeze(frozen)
                live = [r for r in live if r not in ended]
            if not live:
                break
        results = [rec.finish() for rec in recorders]
        result = combine(cfg, results, wall_seconds=time.perf_counter() - t0)
        for cb in callbacks:
            cb.on_train_end(result)
        return result


def _median(values) -> float | None:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return statistics.median(finite) if finite else None


def _earliest(results: list[RunResult], attr: str) -> RunResult | None:
    hit = [r for r in results if getattr(r, attr) is not None]
    return min(hit, key=lambda r: getattr(r, attr)) if hit else None


def replicate_row(seed: int, res: RunResult) -> dict:
    """One entry of ``replicates`` in ``pinnlab run --json``."""
    s = res.summary()
    keep = ("outcome", "reason", "nan_onset_step", "first_nonfinite", "divergence_step", "steps_run",
            "final_loss", "weight_norm_ratio", "rel_l2_error", "heldout_residual", "stopped_by")
    row = {"seed": seed, **{k: s[k] for k in keep}}
    if "causes" in s:  # the forecasts' cause field, when the summary has it
        row["causes"] = s["causes"]
    return row


def combine(cfg, results: list[RunResult], *, wall_seconds: float) -> RunResult:
    """The run's result from its replicates' results (the rules are in the module docstring)."""
    seeds = [r.config.training.seed for r in results]
    counts = Counter(r.outcome for r in results)
    outcome, _, rate = verdict([r.outcome for r in results], cfg.divergence.replicate_rate)
    parts = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: kv[0].order))
    lead = next(r for r in results if r.outcome == outcome)
    reason = f"{len(results)} replicates (seeds {seeds[0]}..{seeds[-1]}): {parts}; e.g. seed {lead.config.training.seed}: {lead.reason}"
    nan = _earliest(results, "nan_onset_step")
    div = _earliest(results, "divergence_step")
    base = results[0]
    warnings = list(dict.fromkeys(w for r in results for w in r.warnings))
    combined = RunResult(
        config=cfg,
        outcome=outcome,
        reason=reason,
        nan_onset_step=None if nan is None else nan.nan_onset_step,
        first_nonfinite=None if nan is None else nan.first_nonfinite,
        steps_run=max(r.steps_run for r in results),
        steps_budget=base.steps_budget,
        wall_seconds=wall_seconds,
        compile_seconds=base.compile_seconds,
        initial_loss=_median(r.initial_loss for r in results),
        final_loss=_median(r.final_loss for r in results),
        weight_norm_initial=_median(r.weight_norm_initial for r in results) or float("nan"),
        weight_norm_final=_median(r.weight_norm_final for r in results) or float("nan"),
        rel_l2_error=_median(r.rel_l2_error for r in results),
        heldout_ratio=_median(r.heldout_ratio for r in results),
        heldout_residual=_median(r.heldout_residual for r in results),
        stopped_by=base.stopped_by,
        warnings=warnings,
        history=base.history,
        final_metrics=base.final_metrics,
        divergence_step=None if div is None else div.divergence_step,
        replicates=[replicate_row(s, r) for s, r in zip(seeds, results)],
        divergence_rate=rate,
    )
    combined.replicate_results = results
    return combined
