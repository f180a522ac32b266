"""The training loops: strategies that produce per-step numbers for a :class:`Recorder`.

Each loop only drives its optimizer and hands every step's vector and diagnostics to the recorder,
which decides whether to go on (a divergence verdict, a callback's ``StopTraining``) and builds
the result; the history, the outcome rules and the callback protocol live there, once.

* :class:`FirstOrderLoop` (sgd, adam, ...): one compiled step per iteration over the trainer's
  batches; the optional loss-weight update and the periodic diagnostics run before the step (they
  see the weights entering it), the update ratio after it.  The step itself never branches on
  finiteness: when its output vector is non-finite, the forensics replay names the first
  non-finite tensor and the run ends in its last finite state (see :mod:`.diagnostics`).
* Full batch, over the flattened weights, one history row per accepted iterate (line-search
  evaluations are not steps), the row holding the values after the iteration:
  :class:`LBFGSLoop` (SciPy's L-BFGS-B) and :class:`NewtonCGLoop` (:mod:`.newton_cg`).

Chains (``optimizer.then`` with ``optimizer.switch_step``, one each or lists): the first phase runs
steps 0 … s₁−1 and, unless the run ended, each later phase continues on the same weights and the
same recorder for its planned number of rows (to the next switch step, or the end of the budget).
A full-batch phase can stop before its rows are used up (L-BFGS-B converged, or its line search
found no decrease); the next phase then starts at once, where it stopped, and keeps its planned
rows, so the run ends early by what was skipped, as the paper's epochs of a converged L-BFGS do
nothing.  The divergence rules apply to every phase as to any row; the history's
``optimizer/phase`` column (0, 1, …) says which phase a row belongs to (the recorder keeps the
steps at which phases actually began).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pinnlab.training.newton_cg import armijo, nystrom, pcg
from pinnlab.training.recorder import Recorder
from pinnlab.training.sharpness import hessian_vector_product

if TYPE_CHECKING:
    from pinnlab.training.trainer import Trainer

__all__ = ["FirstOrderLoop", "LBFGSLoop", "NewtonCGLoop", "chain"]


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
        batches = t.batches()
        for step in range(self.budget):
            points = next(batches)
            if t.adaptive and step % cfg.loss.weighting.every == 0:
                t._update_lambdas(points)
            diag = t.diagnose(step, points) if step % every == 0 else None
            ts = time.perf_counter()
            vecs = t.train_step(points).numpy()
            if step == 0:
                for rec in recorders:
                    rec.compile_seconds = time.perf_counter() - ts
            finite = np.isfinite(vecs).all(axis=1)
            ratios = None
            if diag is not None and cfg.diagnostics.update_ratio and finite[live].any():
                ratios = t.axis.rows(t.update_ratio())
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
    """Raised inside a full-batch objective to end the optimisation at a non-finite value."""


class _FullBatch:
    """The shared part of the full-batch loops: the weights as one float64 vector θ, the loss and
    gradient at θ (one compiled function), and the recorder's bookkeeping of accepted iterates."""

    unit = "iteration"

    def __init__(self, trainer: Trainer, budget: int | None = None, start: int = 0):
        """``start``: the step of its first iteration (a chain's later phase continues the history)."""
        self.trainer = t = trainer
        self.budget = trainer.steps_budget if budget is None else budget
        self.start = start
        self.points = t._tensors(t.train_points)
        self.shapes = [v.shape for v in t.vars]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.value_and_grad = tf.function(self._value_and_grad, jit_compile=t.cfg.training.jit_compile, autograph=False)
        self.step = start  # the step of the iteration in progress
        self.theta: np.ndarray | None = None  # the last point evaluated, finite
        self.vec: np.ndarray | None = None  # ... and its values in step_names order
        self.accepted: np.ndarray | None = None  # the last accepted iterate
        self.recorder: Recorder | None = None

    def resume_at(self, step: int) -> None:
        """Start at ``step``: where the previous phase stopped (module doc, "Chains")."""
        self.start = self.step = step

    def _assign(self, theta):
        t = self.trainer
        for v, p, s in zip(t.vars, tf.split(theta, self.sizes), self.shapes):
            v.assign(tf.reshape(tf.cast(p, v.dtype), s))

    def _value_and_grad(self, theta):
        t = self.trainer
        self._assign(theta)
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
        """(loss, gradient) at ``theta``; ends the run (raises _Stop) at a non-finite value."""
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

    def _accept(self, theta: np.ndarray, extra: dict[str, float] | None = None) -> bool:
        """Record the accepted iterate ``theta`` (already evaluated by :meth:`_fun`) as this step's
        row; False when the run should end here."""
        t = self.trainer
        step = self.step
        prev, self.accepted = self.accepted, np.array(theta)
        diag = None
        if step % t.cfg.diagnostics.every == 0:
            diag = t.diagnose(step, self.points)[0]
            if t.cfg.diagnostics.update_ratio:
                diag.update(t.diagnostics.flat_update_ratio(theta, prev, self.sizes))
            diag.update(extra or {})
        self.step = step + 1
        return self.recorder.record(step, self.vec, diag)

    def run(self, recorders: list[Recorder]) -> None:
        (recorder,) = recorders  # one replicate (pinnlab.config.replicates.check_replicates)
        t = self.trainer
        self.recorder = recorder
        ts = time.perf_counter()
        theta0 = np.concatenate([v.numpy().ravel() for v in t.vars]).astype(np.float64)
        vec0, _ = self.value_and_grad(tf.constant(theta0))
        self.accepted = theta0
        if self.start == 0:  # a chain's later phase joins a run already begun
            recorder.compile_seconds = time.perf_counter() - ts
            recorder.begin()
        try:
            self._optimize(theta0)
        except _Stop:
            pass
        if recorder.nan_step is None:  # leave the model at the last accepted iterate
            self._assign_flat(t.vars, self.accepted)
        if self.step == 0:  # no iteration completed: the initial point is the only row
            recorder.rows[0] = vec0.numpy()[: len(t.step_names)]

    def _optimize(self, theta0: np.ndarray) -> None:
        raise NotImplementedError


class LBFGSLoop(_FullBatch):
    """Full-batch SciPy L-BFGS-B over the flattened weights; one history row per iteration."""

    def _callback(self, intermediate_result) -> None:
        """After each iteration: record the accepted iterate; StopIteration ends the run."""
        theta = intermediate_result.x
        if not np.array_equal(theta, self.theta):
            self._fun(theta)  # the line search's last evaluation was not the accepted point
        if not self._accept(theta):
            raise StopIteration

    def _optimize(self, theta0: np.ndarray) -> None:
        from scipy.optimize import minimize

        oc = self.trainer.cfg.optimizer
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


class NewtonCGLoop(_FullBatch):
    """Nyström-preconditioned Newton–CG (:mod:`.newton_cg`); one history row per iteration, with
    ``newton/step_size``, ``newton/cg_iters`` and ``newton/cg_residual`` on diagnostics rows."""

    def __init__(self, trainer: Trainer, budget: int | None = None, start: int = 0):
        super().__init__(trainer, budget, start)
        self.hvp = tf.function(self._hvp, jit_compile=False, autograph=False)  # never XLA (pinnlab.training.sharpness)
        self.loss_at = tf.function(self._loss_at, jit_compile=trainer.cfg.training.jit_compile, autograph=False)

    def _hvp(self, theta, v):
        """H·v at ``theta`` (both flat float64)."""
        t = self.trainer
        self._assign(theta)
        vectors = [tf.reshape(tf.cast(p, w.dtype), s) for w, p, s in zip(t.vars, tf.split(v, self.sizes), self.shapes)]
        _, hv = hessian_vector_product(lambda: t._total(t._losses(self.points)[0]), t.vars, vectors)
        return tf.concat([tf.cast(tf.reshape(h, [-1]), tf.float64) for h in hv], axis=0)

    def _loss_at(self, theta):
        t = self.trainer
        self._assign(theta)
        return tf.cast(t._total(t._losses(self.points)[0]), tf.float64)

    def _optimize(self, theta0: np.ndarray) -> None:
        t = self.trainer
        oc = t.cfg.optimizer
        rng = np.random.default_rng(t.seeds[0] + 7919)
        theta = theta0
        f, grad = self._fun(theta)
        direction = np.zeros_like(theta)
        precond = None
        for i in range(self.budget):
            hvp = lambda v, th=theta: self.hvp(tf.constant(th), tf.constant(v)).numpy()  # noqa: E731
            if precond is None or i % oc.newton_precond_every == 0:
                precond = nystrom(hvp, theta.size, oc.newton_rank, rng)
            d, iters, rel = pcg(hvp, grad, direction, oc.newton_mu, precond, oc.newton_cg_tol, oc.newton_cg_iters)
            slope = float(grad @ d)
            if not slope > 0:  # not a descent direction: the gradient is
                d, slope = grad, float(grad @ grad)
            step = armijo(lambda s: float(self.loss_at(tf.constant(theta - s * d)).numpy()), f, slope)
            if step > 0:
                theta, direction = theta - step * d, d
            else:  # no decrease along d: start the next solve cold, on a fresh preconditioner
                direction, precond = np.zeros_like(theta), None
            f, grad = self._fun(theta)
            extra = {"newton/step_size": step, "newton/cg_iters": float(iters), "newton/cg_residual": rel}
            if not self._accept(theta, extra):
                return


def chain(trainer: Trainer) -> list:
    """The loops of ``trainer``'s run in order: one, or a chain's phases (``optimizer.phases()``)."""
    phases = trainer.cfg.optimizer.phases()
    ends = [start for _, start in phases[1:]] + [trainer.steps_budget]
    loops = []
    for (name, start), end in zip(phases, ends):
        kind = {"lbfgs": LBFGSLoop, "newton_cg": NewtonCGLoop}.get(name, FirstOrderLoop)
        loops.append(
            kind(trainer, budget=end - start)
            if kind is FirstOrderLoop
            else kind(trainer, budget=end - start, start=start)
        )
    return loops
