"""The recorder: everything a training loop does with a step's numbers, in one place.

A loop (:mod:`pinnlab.training.loops`) produces, per step, one small vector (the values named by
``Trainer.step_names``) and, every ``diagnostics.every`` steps, a dict of diagnostics; it hands
them to :meth:`Recorder.record` and asks nothing else.  The recorder

* writes the vector into a preallocated history array (one row per step of the budget, so a long
  run never grows a list) and the global weight norm into the series the
  :class:`DivergenceMonitor` fits its exponential growth on without copies;
* keeps the diagnostics rows, joined into the history at the end (NaN on the other rows);
* notifies the callbacks (``on_train_begin``, ``on_diagnostics``, ``on_step``, ``on_train_end``);
  the trainer knows nothing of MLflow or Optuna and reports only through them;
* asks the monitor for a verdict (the first rule to fire names the outcome; later steps are not
  checked again) and says whether to go on;
* keeps the NaN bookkeeping (:meth:`Recorder.nonfinite`: the step and the first non-finite
  tensor) and, at the end, builds the :class:`RunResult` (:meth:`Recorder.finish`).

A callback may raise :class:`StopTraining` from ``on_step`` or ``on_diagnostics`` (e.g. a sweep's
pruner).  The recorder catches it where it is raised, so it knows the step: the run ends there with
that step's row kept (a stop at step 37 gives 38 rows, 0..37) and ``stopped_by`` set.

Both loops share this object, so the history, the outcome rules and the callback protocol cannot
drift apart between the first-order optimizers and L-BFGS (DeepXDE's ``_train_sgd`` /
``_train_scipy`` side by side is the shape avoided).
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import tensorflow as tf

from pinnlab.core.names import OPTIMIZERS
from pinnlab.core.outcomes import Outcome
from pinnlab.training.callbacks import StopTraining
from pinnlab.training.causes import run_causes
from pinnlab.training.divergence import DivergenceMonitor, Verdict, classify_finished, classify_trend
from pinnlab.training.forecast import Forecaster
from pinnlab.training.result import RunResult
from pinnlab.training.trends import Improvement, descending, improvement

if TYPE_CHECKING:
    from pinnlab.training.trainer import Trainer

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


def _improving(cfg, history: pd.DataFrame, rel_err: float | None) -> Improvement | None:
    """The error against the exact solution at the diagnostics checks and the end, carried to the
    horizon (:func:`pinnlab.training.trends.improvement`); None without an exact solution."""
    if rel_err is None:
        return None
    end = len(history) - 1
    steps, values = np.array([], int), np.array([])
    if "error/rel_l2" in history:
        err = history["error/rel_l2"]
        err = err[np.isfinite(err) & (err.index < end)]
        steps, values = err.index.to_numpy(), err.to_numpy(dtype=float)
    return improvement("error/rel_l2", np.append(steps, end), np.append(values, rel_err), end, cfg.horizon)


class Recorder:
    """History, divergence monitor, callbacks and the result of one run of ``trainer``.

    ``unit`` names a step in messages ("step", or "iteration" for L-BFGS).
    """

    def __init__(
        self, trainer: Trainer, budget: int, unit: str = "step", *, callbacks=None, end_callbacks=None, run_callbacks=()
    ):
        self.trainer = trainer
        self.cfg = cfg = trainer.cfg
        self.callbacks = list(trainer.callbacks if callbacks is None else callbacks)
        # who hears on_train_end: a replicate's own callbacks (the run's hear the combined result)
        self.end_callbacks = self.callbacks if end_callbacks is None else list(end_callbacks)
        # a StopTraining from one of these stops every replicate; from the others, this one only
        self.run_callbacks = {id(cb) for cb in run_callbacks}
        self.names = list(trainer.step_names)
        self.budget = budget
        self.unit = unit
        self.rows = np.full((budget, len(self.names)), np.nan)
        self.norms = np.full(budget, np.nan)
        self.monitor = DivergenceMonitor(cfg.divergence, self.norms, cfg.diagnostics.every)
        self.diag_rows: dict[int, dict[str, float]] = {}
        self.forecaster = Forecaster(
            cfg.divergence,
            budget,
            cfg.loss.unbounded_terms(trainer.terms),
            OPTIMIZERS.get(cfg.optimizer.name).bounded_step,
        )
        self._wn = self.names.index("weight_norm/total")
        self.verdict: Verdict | None = None
        self.nan_step: int | None = None
        self.first_bad: str | None = None
        self.stopped_by: str | None = None
        self.callback_stop = False
        self.last_step: int | None = None  # the last step with a row
        self.phase_starts: list[int] = []  # the steps at which a chain's later phases began
        self.compile_seconds = 0.0  # the first call of the compiled step, set by the loop
        self.t0 = time.perf_counter()  # wall time counts from here

    # ------------------------------------------------------------------ during the run
    def begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(self.trainer)

    def record(self, step: int, vec: np.ndarray, diag: dict[str, float] | None = None) -> bool:
        """Record a finite step; False when the run should end here (a verdict or StopTraining).

        ``vec``: the step's values in ``step_names`` order (extra trailing entries are ignored);
        ``diag``: the diagnostics measured at this step, if any.
        """
        n = len(self.names)
        self.last_step = step
        self.rows[step] = vec[:n]
        self.norms[step] = vec[self._wn]
        alarm = None
        if diag is not None:
            alarm = self.forecaster.check(step, diag, self)
            if alarm is not None:
                log.info("forecast alarm at %s %d: %s", self.unit, step, alarm.detail)
        cb = None
        try:
            if diag is not None:
                self.diag_rows[step] = diag
                for cb in self.callbacks:
                    cb.on_diagnostics(step, diag)
            if self.callbacks:
                metrics = dict(zip(self.names, vec.tolist()))
                for cb in self.callbacks:
                    cb.on_step(step, metrics)
        except StopTraining as stop:
            self.stopped_by = str(stop)
            self.callback_stop = id(cb) in self.run_callbacks  # the run stops, every replicate with it
            return False
        if self.verdict is None:
            self.verdict = self.monitor.check(step, float(vec[0]), float(self.norms[step]))
            if self.verdict is not None and self.cfg.divergence.stop_early:
                return False
        if alarm is not None and self.cfg.divergence.stop_on_alarm:
            self.stopped_by = f"forecast alarm ({alarm.signal}) at {self.unit} {step}: {alarm.detail}"
            return False
        return True

    def stops_here(self, step: int, vec: np.ndarray) -> bool:
        """Whether the divergence monitor ends the run at ``step`` as ``blowup`` on the step's
        pre-update weight norm (finite, as the loss) although a value computed after it (a
        gradient) was not.

        The verdict wins: those inputs precede the gradient, and a gradient at the edge of float
        overflow is finite or not by rounding alone (a stacked replicate and its separate run may
        round it apart), while the verdict on the inputs is the same for both."""
        if self.verdict is not None or not self.cfg.divergence.stop_early:
            return False
        loss, norm = float(vec[0]), float(vec[self._wn])
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return False
        self.norms[step] = norm
        verdict = self.monitor.check(step, loss, norm)
        return verdict is not None and verdict.outcome == Outcome.BLOWUP

    def nonfinite(self, step: int, first_bad: str, vec: np.ndarray | None = None, diag=None) -> None:
        """Record the step at which a value became non-finite (the run ends there).

        ``vec``: the failing step's values, kept as its row (None leaves the row NaN); callbacks
        hear nothing of this step, its numbers are not metrics.
        """
        self.last_step = step
        self.nan_step, self.first_bad = step, first_bad
        if vec is not None:
            self.rows[step] = vec[: len(self.names)]
        if diag is not None:
            self.diag_rows[step] = diag
        msg = f"first non-finite value at {self.unit} {step}: {first_bad}"
        self.verdict = self.verdict or Verdict(Outcome.NAN, step, msg)

    @property
    def ended(self) -> bool:
        """A verdict, a non-finite value or a StopTraining ended this run before its budget."""
        return self.verdict is not None or self.nan_step is not None or self.stopped_by is not None

    @property
    def steps_run(self) -> int:
        return 1 if self.last_step is None else self.last_step + 1

    # ------------------------------------------------------------------ the result
    def finish(self) -> RunResult:
        """The RunResult of the rows recorded so far (evaluates the trainer's current weights)."""
        cfg = self.cfg
        trainer = self.trainer
        verdict, nan_step = self.verdict, self.nan_step
        history = pd.DataFrame(self.rows[: self.steps_run], columns=self.names)
        history.index.name = "step"
        if self.diag_rows:
            diag = pd.DataFrame.from_dict(self.diag_rows, orient="index")
            history = history.join(diag, how="left")
        history.index.name = "step"
        starts = self.phase_starts
        if cfg.optimizer.then is not None:  # a chain: which phase each row belongs to (pinnlab.training.loops)
            history["optimizer/phase"] = np.searchsorted(starts, history.index.to_numpy(), side="right").astype(float)
        losses = history["loss/total"].to_numpy()
        finite_losses = losses[np.isfinite(losses)]
        initial_loss = float(finite_losses[0]) if len(finite_losses) else None
        final_loss = float(finite_losses[-1]) if len(finite_losses) else None
        wn = history["weight_norm/total"].to_numpy()
        weight_norm_initial = float(wn[0]) if len(wn) and math.isfinite(wn[0]) else float("nan")
        weight_norm_final = float(tf.linalg.global_norm(trainer.vars).numpy())
        warnings = list(trainer.warnings)
        rel_err = trainer.rel_l2_error()  # a run that went non-finite: of its last finite state (kept)
        if rel_err is not None and not math.isfinite(rel_err):
            rel_err = None
        heldout = held_ms = None
        unbounded = cfg.loss.unbounded_terms(trainer.terms)
        if verdict is None and nan_step is None:
            # a chain that reached a second-order phase ends on unbounded steps, whatever came first
            second = len(starts) > 0 and self.steps_run > starts[0]
            verdict = classify_trend(
                cfg.divergence,
                norms=self.norms,
                losses=self.rows[:, 0],
                end=self.steps_run - 1,
                unbounded_terms=unbounded,
                bounded_step=OPTIMIZERS.get(cfg.optimizer.name).bounded_step and not second,
            )
        if verdict is None:
            held_ms, heldout = trainer.heldout_residual()
            outcome, reason, extra = classify_finished(
                cfg.divergence,
                initial_loss=initial_loss,
                final_loss=final_loss,
                rel_l2_error=rel_err,
                heldout_ratio=heldout,
                improving=_improving(cfg.divergence, history, rel_err),
                bounded=not unbounded,
                descent=descending(losses, len(losses) - 1, cfg.divergence.trend_window),
            )
            warnings += extra
        else:
            outcome, reason = verdict.outcome, verdict.reason
            if nan_step is not None and verdict.outcome != Outcome.NAN:
                reason += f"; first non-finite value at {self.unit} {nan_step}: {self.first_bad}"
        last = history.replace([np.inf, -np.inf], np.nan).ffill().iloc[-1]  # last finite value per metric
        final_metrics = {k: float(v) for k, v in last.items() if isinstance(v, float) and math.isfinite(v)}
        if rel_err is not None:
            final_metrics["error/rel_l2"] = rel_err
        result = RunResult(
            config=cfg,
            outcome=outcome,
            reason=reason,
            nan_onset_step=nan_step,
            first_nonfinite=self.first_bad,
            steps_run=len(history),
            steps_budget=self.budget,
            wall_seconds=time.perf_counter() - self.t0,
            compile_seconds=self.compile_seconds,
            initial_loss=initial_loss,
            final_loss=final_loss,
            weight_norm_initial=weight_norm_initial,
            weight_norm_final=weight_norm_final,
            rel_l2_error=rel_err,
            heldout_ratio=heldout,
            heldout_residual=held_ms,
            stopped_by=self.stopped_by,
            warnings=warnings,
            history=history,
            final_metrics=final_metrics,
            divergence_step=None if verdict is None else verdict.step,
            forecast={} if self.forecaster.alarm is None else self.forecaster.alarm.as_dict(),
        )

        static = trainer.static_causes
        result.known_causes = ",".join(c.cause for c in static)
        found = [
            c.as_dict() for c in run_causes(cfg, history, terms=trainer.terms, summary=result.summary(), static=static)
        ]
        if outcome.worked:  # nothing failed, so nothing to explain: what the rules saw is a risk
            result.risks = found
        else:
            result.causes = found
        for cb in self.end_callbacks:
            cb.on_train_end(result)
        return result
