"""Diagnostics: what the trainer measures besides the step itself, kept outside the model.

Like jaxpi's evaluator, this module reads the trainer's parts (problem, model, loss terms, weights
and their pre-step copy) and never changes how training goes; the trainer and the loops call it.

* :class:`Diagnostics` holds the expensive measurements, run every ``diagnostics.every`` steps in
  a second compiled function (the step compiles only what every step needs): per-layer weight and
  gradient norms, one backward pass per loss term, mean derivative magnitudes, the per-layer
  update ratio ‖ΔW‖/‖W‖, the relative error on the evaluation grid and (``diagnostics.sharpness``)
  the top Hessian eigenvalue against the optimizer's stability threshold (:mod:`.sharpness`).  Each sits behind its
  ``diagnostics.*`` flag and comes back as a flat dict keyed ``grad_norm/<term>``,
  ``weight_norm/<layer>/<var>``, ``deriv/<name>``, ``update_ratio/<layer>/<var>``,
  ``error/rel_l2``: the keys of the history, the tracking store and the analysis.
* The end-of-run evaluations: :meth:`Diagnostics.rel_l2_error` on the evaluation grid and
  :meth:`Diagnostics.heldout_residual` (PDE residual on held-out points against the training
  points'), which decide ``silent_failure``.
* Non-finite forensics (:meth:`Diagnostics.locate_nonfinite`).  The compiled step never branches
  on finiteness: its global gradient and weight norms double as the finite check (a norm is finite
  iff every entry is).  When the host sees a non-finite value, the weights are restored from the
  copy the step took before its update (so a non-finite update is never kept: the run ends in its
  last finite state) and the failing step is replayed once, eagerly, tensor by tensor, to name the
  first non-finite quantity in computation order (network output, derivatives, residuals, losses,
  gradients, updated weights).  The replay reproduces the step exactly because runs are
  deterministic.

Cheap diagnostics (global norms) cost within the noise of a step; these cost a few steps each,
hence the period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pinnlab.training.compiled import Compiled
from pinnlab.training.sharpness import Sharpness

if TYPE_CHECKING:
    from pinnlab.training.trainer import Trainer

__all__ = ["Diagnostics", "finite", "global_norm", "norm", "relative_l2"]


def relative_l2(u: np.ndarray, exact: np.ndarray) -> float:
    """‖u − exact‖ / ‖exact‖ (‖u − exact‖ when ‖exact‖ = 0), in float64: a diverged network's
    float32 predictions near 1e20 overflow a float32 sum of squares (numpy's RuntimeWarning, inf);
    in float64 the error is their finite size, inf only for inf predictions."""
    num = float(np.linalg.norm(np.asarray(u, np.float64) - np.asarray(exact, np.float64)))
    den = float(np.linalg.norm(np.asarray(exact, np.float64)))
    return num / den if den > 0 else num


def norm(t: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(t)))


def global_norm(tensors) -> tf.Tensor:
    """‖concat(tensors)‖: one reduction instead of one per tensor (XLA emits ~50 fewer kernels)."""
    return norm(tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0))


def finite(t: tf.Tensor) -> bool:
    return bool(tf.reduce_all(tf.math.is_finite(t)))


class Diagnostics:
    """The periodic measurements and the forensics of one trainer.

    Calling it, ``diagnostics(step, points)``, returns the periodic metrics of the weights entering
    ``step`` as plain floats (``points``: the step's point sets, ``{"residual": (n, d), ...}``).
    """

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        # eager for about as many calls as a trace costs, over the trainer's life; then compiled
        # (pinnlab.training.compiled has the measured costs)
        jit = trainer.cfg.training.jit_compile
        eager = trainer.cfg.diagnostics.eager_calls
        self.measure = Compiled(self._measure_impl, eager_calls=eager, jit_compile=jit, autograph=False)
        self.update_ratio = Compiled(self._update_ratio_impl, eager_calls=eager, autograph=False)
        self._pde_mean_squares = Compiled(
            self._pde_mean_squares_impl, eager_calls=eager, autograph=False, reduce_retracing=True
        )
        self.sharpness = None
        if trainer.cfg.diagnostics.sharpness:
            self.sharpness = Sharpness(trainer)

    def restart(self) -> None:
        """A run starts (fresh or reused trainer): a cold sharpness check, and each function told how
        many calls the run makes at most (eager or compiled, :meth:`Compiled.plan`)."""
        t = self.trainer
        checks = -(-t.steps_budget // t.cfg.diagnostics.every)  # steps 0, every, 2·every, ... of the budget
        self.measure.plan(checks)
        self.update_ratio.plan(checks)
        t.predictor.plan(checks + 1)  # + the end of run's evaluation
        self._pde_mean_squares.plan(1)  # the held-out residual, at the end
        if self.sharpness is not None:
            self.sharpness.reset()
            self.sharpness.plan(checks)

    def __call__(self, step: int, points) -> list[dict[str, float]]:
        """The periodic metrics of every replicate: one flat dict per replicate."""
        t = self.trainer
        rows = t.axis.rows(self.measure(points))
        ntk = getattr(t, "ntk", None)
        if ntk is not None:
            for row, traces in zip(rows, ntk.diagnostics(points, step)):
                row.update(traces)
        if t.cfg.diagnostics.error and t.eval_u is not None:
            for row, err in zip(rows, self.rel_l2_errors()):
                if err is not None:
                    row["error/rel_l2"] = err
        if self.sharpness is not None:
            for row, sharp in zip(rows, self.sharpness(points)):
                row.update(sharp)
        return rows

    # ------------------------------------------------------------------ compiled
    def _measure_impl(self, points):
        t = self.trainer
        axis = t.axis
        diag = t.cfg.diagnostics
        out: dict[str, tf.Tensor] = {}
        with tf.GradientTape(persistent=True) as tape:
            losses, derivs, _ = t._losses(points)
            weighted = {term: axis.total(w) for term, w in t._weighted(losses).items()}
        per_term = {term: t._gradients(tape, weighted[term], t.vars) for term in t.loss_terms}
        del tape
        total_grads = [tf.add_n([per_term[term][i] for term in t.loss_terms]) for i in range(len(t.vars))]
        if diag.per_term_grads:
            for term in t.loss_terms:
                out[f"grad_norm/{term}"] = axis.norm(per_term[term])
        if diag.per_layer:
            for name, v, g in zip(t.var_names, t.vars, total_grads):
                out[f"weight_norm/{name}"] = axis.norm([v])
                out[f"grad_norm/{name}"] = axis.norm([g])
        if diag.derivatives:
            for name, d in derivs.items():
                out[f"deriv/{name}"] = axis.mean_abs(d)
        return out

    def _update_ratio_impl(self):
        # undefined (NaN, never logged) for a tensor that was exactly zero, e.g. biases at step 0
        t = self.trainer
        norm_ = t.axis.norm
        nan = tf.constant(float("nan"), t.dtype)
        out = {}
        for n, v, b in zip(t.var_names, t.vars, t.backup):
            nb, nd = norm_([b]), norm_([v - b])
            out[f"update_ratio/{n}"] = tf.where(nb > 0, nd / tf.maximum(nb, 1e-30), nan)
        return out

    def flat_update_ratio(self, theta: np.ndarray, prev: np.ndarray, sizes: Sequence[int]) -> dict[str, float]:
        """‖ΔW‖/‖W‖ per variable between two flattened weight vectors (the L-BFGS iterates)."""
        cuts = np.cumsum(sizes)[:-1]
        return {
            f"update_ratio/{name}": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
            for name, a, b in zip(self.trainer.var_names, np.split(theta, cuts), np.split(prev, cuts))
        }

    # ------------------------------------------------------------------ evaluation
    def rel_l2_errors(self) -> list[float | None]:
        """‖u_r − u_exact‖ / ‖u_exact‖ on the evaluation grid per replicate; None without an exact solution."""
        t = self.trainer
        if t.eval_u is None:
            return [None] * t.k
        x = np.repeat(t.eval_x, t.k, axis=0)  # every replicate on the same grid, interleaved
        u = t.predictor(tf.constant(x, t.dtype)).numpy().reshape(-1, t.k)
        return [relative_l2(u[:, r : r + 1], t.eval_u) for r in range(t.k)]

    def _pde_mean_squares_impl(self, x, n_first: int):
        # both point sets in one call (one pass through the nested tapes)
        t = self.trainer
        terms, _ = t.problem.pde_residuals(t.model, x)
        first = tf.add_n([t.axis.mean_square(r[:n_first]) for r in terms.values()])
        second = tf.add_n([t.axis.mean_square(r[n_first:]) for r in terms.values()])
        return first, second

    def heldout_residuals(self) -> list[tuple[float | None, float | None]]:
        """(mean square PDE residual on held-out points, its ratio to the training points') per replicate."""
        t = self.trainer
        if t.problem.params_dict().get("literal"):
            return [(None, None)] * t.k
        n = t.cfg.divergence.heldout_points
        train_x = t.train_points["residual"]
        held_x = t.axis.interleave([t.problem.heldout(np.random.default_rng(s + 7919), n) for s in t.seeds])
        x = tf.constant(np.concatenate([train_x, held_x]), t.dtype)
        train, held = (t.axis.values(v) for v in self._pde_mean_squares(x, len(train_x)))
        out = []
        for a, b in zip(train, held):
            a, b = float(a), float(b)
            out.append((None, None) if not (math.isfinite(a) and math.isfinite(b)) else (b, b / max(a, 1e-30)))
        return out

    # ------------------------------------------------------------------ forensics
    def locate_nonfinite(self, points, names: Sequence[str], vec: np.ndarray, default: str, r: int = 0) -> str:
        """Name replicate ``r``'s first non-finite quantity of the failing step; restores its pre-step
        weights and freezes it (the others go on).

        ``names``/``vec``: the step's output vector and its names; the first non-finite entry
        (else ``default``) is the answer when the replay finds nothing earlier.
        """
        t = self.trainer
        axis = t.axis
        fallback = next((n for n, x in zip(names, vec) if not np.isfinite(x)), default)
        post = [n for n, v in zip(t.var_names, t.vars) if not finite(axis.replica(v, r))]
        t.freeze([r], restore=True)
        checks: list[tuple[str, tf.Tensor]] = []
        for name, pts in points.items():
            checks.append((f"output/{name}", axis.column(t.model(pts), r)))
        with tf.GradientTape() as tape:
            losses, derivs, terms = t._losses(points)
            total = t._total(losses)
            summed = axis.total(total)
        checks += [(f"deriv/{n}", axis.column(d, r)) for n, d in derivs.items()]
        for n, res in terms.items():
            checks += [(f"residual/{n}", axis.column(p, r)) for p in (res if isinstance(res, list) else [res])]
        checks += [(f"loss/{term}", axis.replica(losses[term], r)) for term in t.loss_terms]
        checks.append(("loss/total", axis.replica(total, r)))
        grads = t._gradients(tape, summed, t.vars)
        checks += [(f"grad/{n}", axis.replica(g, r)) for n, g in zip(t.var_names, grads)]
        checks.append(("grad_norm/total", axis.replica(axis.norm(grads), r)))
        for name, x in checks:
            if not finite(x):
                return name
        if post:
            return f"weight/{post[0]}"
        return fallback
