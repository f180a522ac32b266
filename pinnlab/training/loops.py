"""The two training loops: strategies that produce per-step numbers for a :class:`Recorder`.

Each loop only drives its optimizer and hands every step's vector and diagnostics to the recorder,
which decides whether to go on (a divergence verdict, a callback's ``StopTraining``) and builds
the result; the history, the outcome rules and the callback protocol live there, once.

* :class:`FirstOrderLoop` (sgd, adam, ...): one compiled step per iteration over the trainer's
  batches; the optional loss-weight update and the periodic diagnostics run before the step (they
  see the weights entering it), the update ratio after it.  The step itself never branches on
  finiteness: when its output vector is non-finite, the forensics replay names the first
  non-finite tensor and the run ends in its last finite state (see :mod:`.diagnostics`).
* :class:`LBFGSLoop`: SciPy's L-BFGS-B over the flattened weights, full batch, one history row per
  accepted iterate (line-search evaluations are not steps).  Its state between SciPy's calls of
  the objective and of the callback is a handful of named fields, not closures over a dict.

Chains (``optimizer.then: lbfgs`` with ``optimizer.switch_step: s``): the first-order loop runs
steps 0 … s−1 and, unless the run ended, the L-BFGS loop continues on the same weights and the same
recorder from step s to the end of the budget, one row per iteration.  The divergence rules apply
to both phases as to any row; the history's ``optimizer/phase`` column (0, 1) says which phase a
row belongs to (added by the recorder).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pinnlab.training.recorder import Recorder

if TYPE_CHECKING:
    from pinnlab.training.trainer import Trainer

__all__ = ["FirstOrderLoop", "LBFGSLoop", "chain"]


class FirstOrderLoop:
    """Keras optimizers: one compiled step per history row."""

    unit = "step"

    def __init__(self, trainer: Trainer, budget: int | None = None):
        self.trainer = trainer
        self.budget = trainer.steps_budget if budget is None else budget

    def run(self, recorders: list[Recorder]) -> None:
        t = self.trainer
        cfg = t.cfg
        every = cfg.diagnostics.every
        names = t.step_names + ["weight_norm/updated"]
        for rec in recorders:
            rec.begin()
        live = list(range(t.k))
        batches = t._batches()
        for step in range(self.budget):
            points = next(batches)
            if t.adaptive and step % cfg.loss.weighting.every == 0:
                t._update_lambdas(points)
            diag = t._diagnostics(step, points) if step % every == 0 else None
            ts = time.perf_counter()
            vecs = t._step(points).numpy()
            if step == 0:
                for rec in recorders:
                    rec.compile_seconds = time.perf_counter() - ts
            finite = np.isfinite(vecs).all(axis=1)
            ratios = None
            if diag is not None and cfg.diagnostics.update_ratio and finite[live].any():
                ratios = t.axis.rows(t._update_ratio())
            ended = []
            for r in live:
                d = None if diag is None else diag[r]
                if not finite[r] and recorders[r].stops_here(step, vecs[r]):
                    t.freeze([r], restore=True)  # a verdict on the step's finite inputs: its last finite weights
                    recorders[r].record(step, vecs[r], d)
                    ended.append(r)
                    continue
                if not finite[r]:
                    bad = t.diagnostics.locate_nonfinite(points, names, vecs[r], names[0], r)
                    recorders[r].nonfinite(step, bad, vecs[r], d)
                    ended.append(r)
                    continue
                if ratios is not None:
                    d.update(ratios[r])
                if not recorders[r].record(step, vecs[r], d):
                    ended.append(r)
            stop = next((recorders[r] for r in ended if recorders[r].callback_stop), None)
            if stop is not None:  # a callback stopped the run: every replicate ends here
                for r in live:
                    if r not in ended:
                        recorders[r].stopped_by = stop.stopped_by
                return
            if ended:
                t.freeze([r for r in ended if recorders[r].nan_step is None])  # NaN ones are frozen already
                live = [r for r in live if r not in ended]
            if not live:
                return


class _Stop(Exception):
    """Raised inside the L-BFGS objective to end the optimisation at a non-finite value."""


class LBFGSLoop:
    """Full-batch SciPy L-BFGS-B over the flattened weights; one history row per iteration."""

    unit = "iteration"

    def __init__(self, trainer: Trainer, budget: int | None = None, start: int = 0):
        """``start``: the step of its first iteration (a chain's second phase continues the history)."""
        self.trainer = t = trainer
        self.budget = trainer.steps_budget if budget is None else budget
        self.start = start
        self.points = t._tensors(t.train_points)
        self.shapes = [v.shape for v in t.vars]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.value_and_grad = tf.function(self._value_and_grad, jit_compile=t.cfg.training.jit_compile, autograph=False)
        self.step = start  # the step of the iteration SciPy is in
        self.theta: np.ndarray | None = None  # the last point the objective evaluated, finite
        self.vec: np.ndarray | None = None  # ... and its values in step_names order
        self.accepted: np.ndarray | None = None  # the last accepted iterate
        self.recorder: Recorder | None = None

    def _value_and_grad(self, theta):
        t = self.trainer
        parts = tf.split(theta, self.sizes)
        for v, p, s in zip(t.vars, parts, self.shapes):
            v.assign(tf.reshape(tf.cast(p, v.dtype), s))
        with tf.GradientTape() as tape:
            losses, _, _ = t._losses(self.points)
            total = t._total(losses)
        grads = t._gradients(tape, total, t.vars)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
        vec = [total] + [losses[term] for term in t.loss_terms]
        vec += [tf.linalg.global_norm(grads), tf.linalg.global_norm(t.vars)]
        return tf.stack([tf.cast(o, tf.float64) for o in vec]), tf.cast(flat, tf.float64)

    def _assign_flat(self, variables, theta: np.ndarray) -> None:
        for v, p in zip(variables, np.split(theta, np.cumsum(self.sizes)[:-1])):
            v.assign(p.reshape(tuple(v.shape)).astype(self.trainer.dtype.as_numpy_dtype))

    def _fun(self, theta: np.ndarray):
        """SciPy's objective: (loss, gradient); ends the run at a non-finite value."""
        vec, grad = self.value_and_grad(tf.constant(theta))
        vec, grad = vec.numpy(), grad.numpy()
        if not (np.isfinite(vec).all() and np.isfinite(grad).all()):
            t = self.trainer
            self._assign_flat(t.backup, self.accepted)
            bad = t.diagnostics.locate_nonfinite(self.points, t.step_names, vec, "grad/flat", 0)
            self.recorder.nonfinite(self.step, bad)
            raise _Stop
        self.theta, self.vec = theta, vec
        return float(vec[0]), grad

    def _callback(self, intermediate_result) -> None:
        """After each iteration: record the accepted iterate; StopIteration ends the run."""
        t = self.trainer
        step, theta = self.step, intermediate_result.x
        if not np.array_equal(theta, self.theta):
            self._fun(theta)  # the line search's last evaluation was not the accepted point
        prev, self.accepted = self.accepted, np.array(theta)
        diag = None
        if step % t.cfg.diagnostics.every == 0:
            diag = t._diagnostics(step, self.points)[0]
            if t.cfg.diagnostics.update_ratio:
                diag.update(t.diagnostics.flat_update_ratio(theta, prev, self.sizes))
        self.step = step + 1
        if not self.recorder.record(step, self.vec, diag):
            raise StopIteration

    def run(self, recorders: list[Recorder]) -> None:
        from scipy.optimize import minimize

        (recorder,) = recorders  # one replicate (pinnlab.replicates.check_replicates)
        t = self.trainer
        oc = t.cfg.optimizer
        self.recorder = recorder
        ts = time.perf_counter()
        theta0 = np.concatenate([v.numpy().ravel() for v in t.vars]).astype(np.float64)
        vec0, _ = self.value_and_grad(tf.constant(theta0))
        self.accepted = theta0
        if self.start == 0:  # a chain's second phase joins a run already begun
            recorder.compile_seconds = time.perf_counter() - ts
            recorder.begin()
        try:
            minimize(
                self._fun,
                theta0,
                jac=True,
                method="L-BFGS-B",
                callback=self._callback,
                options={
                    "maxiter": self.budget,
                    "maxfun": 2 * self.budget,
                    "ftol": oc.lbfgs_ftol,
                    "gtol": 0.0,
                    "maxcor": 50,
                    "maxls": 50,
                },
            )
        except _Stop:
            pass
        if recorder.nan_step is None:  # leave the model at the last accepted iterate
            self._assign_flat(t.vars, self.accepted)
        if self.step == 0:  # no iteration completed: the initial point is the only row
            recorder.rows[0] = vec0.numpy()[: len(t.step_names)]


def chain(trainer: Trainer) -> list:
    """The loops of ``trainer``'s run in order: one, or a first-order phase then L-BFGS (module doc)."""
    opt = trainer.cfg.optimizer
    if trainer.optimizer is None:
        return [LBFGSLoop(trainer)]
    if opt.then is None:
        return [FirstOrderLoop(trainer)]
    s = opt.switch_step
    return [FirstOrderLoop(trainer, budget=s), LBFGSLoop(trainer, budget=trainer.steps_budget - s, start=s)]
