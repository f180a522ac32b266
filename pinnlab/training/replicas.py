"""Seed replicates of one configuration trained in one compiled step (``training.replicates: k``).

Replicate ``r`` is the run with seed ``training.seed + r``: its own initial weights (the same
initializer draws, :class:`~pinnlab.training.stacked.StackedMLP`), its own points (sampled, batched
and resampled by its own ``np.random.default_rng(seed + r)`` exactly as a separate run's), its own
optimizer state, losses, gradient clipping, max-norm, diagnostics, divergence monitor and outcome.
The step computes them for all k at once; the one loss the tape differentiates is the sum of the k
replicates' totals, whose gradient is each replicate's own gradient because the networks share no
weights.  Everything a single run reduces globally is reduced per replicate here: the gradient and
weight norms (``(k,)`` vectors), clip-by-global-norm (one factor per replicate), the penalties.
Keras optimizers on stacked variables are elementwise (Adam's moments, SGD's momentum), so they are
per replicate already; their iteration count is shared, which is what k separate runs have too.

A replicate is *frozen* when its run would have ended: the step applies an update only where
``active`` is true (``w ← where(active, w_new, w_before)``).  The host loop
(:mod:`pinnlab.training.replica_loop`) clears a replicate's flag when its step vector is non-finite
(after restoring its weights from the pre-step copy, so it ends in its last finite state, as a single
run does), when a divergence rule stops it, or when a callback stops the run; the others continue.

What else was tried: a Python loop over replicates inside one graph (k networks, k tapes) keeps any
problem working but pays k times the per-op overhead that dominates these small steps.  ``vectorized_map``
over a per-replicate step would need the Keras optimizer inside the mapped function.

Not supported (one-line config errors, :mod:`pinnlab.replicate_rules`): L-BFGS, ``grad_norm``
loss weighting, problems whose residual reduces over the points.  Not measured per replicate:
``sharpness/*`` (``diagnostics.sharpness``; a Lanczos estimate per replicate on stacked weights is
not built), so a replicate's forecast rests on the weight and loss trends alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from pinnlab.config import RunConfig
from pinnlab.losses import formulation
from pinnlab.models import mlp_kwargs
from pinnlab.optimizers import build_optimizer
from pinnlab.problems import resolve_problem
from pinnlab.training.diagnostics import relative_l2
from pinnlab.training.stacked import StackedMLP, interleave, per_replicate, replicate_norm
from pinnlab.training.trainer import Trainer

__all__ = ["ReplicaTrainer", "replica_config"]


def replica_config(cfg: RunConfig, r: int) -> RunConfig:
    """The config of replicate ``r`` as a separate run: seed ``seed + r``, one replicate."""
    training = cfg.training.model_copy(update={"seed": cfg.training.seed + r, "replicates": 1})
    return cfg.model_copy(update={"training": training})


class ReplicaTrainer:
    """Builds k stacked replicates of ``config`` and trains them together (see the module doc)."""

    def __init__(self, config: RunConfig, callbacks=()):
        self.cfg = cfg = config
        self.callbacks = list(callbacks)
        self.k = k = cfg.training.replicates
        self.seeds = [cfg.training.seed + r for r in range(k)]
        self.configs = [replica_config(cfg, r) for r in range(k)]
        if cfg.training.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.problem = resolve_problem(cfg.problem.name, cfg.problem.params)
        self.dtype = tf.as_dtype(cfg.model.dtype)
        self.model = StackedMLP(seeds=self.seeds, **mlp_kwargs(cfg.model, self.problem))
        self.vars = list(self.model.variables)
        self.var_names = list(self.model.var_names)
        self.kernels = list(self.model.kernels)
        reg = cfg.regularization
        self.penalized = self.vars if reg.include_biases else self.kernels
        self.backup = [tf.Variable(v, trainable=False, name=f"backup_{i}") for i, v in enumerate(self.vars)]
        self.active = tf.Variable(tf.ones((k,), tf.bool), trainable=False, name="active")

        self.terms = list(self.problem.term_names())
        self.penalty_terms = [t for t, c in (("l2", reg.l2), ("l1", reg.l1)) if c > 0]
        self.loss_terms = self.terms + self.penalty_terms
        lc = cfg.loss
        self.forms = {t: formulation(lc.formulations.get(t, lc.formulation)) for t in self.terms}
        self.lambdas = {t: tf.constant(float(lc.weights.get(t, 1.0)), self.dtype) for t in self.terms}
        self.adaptive: list[str] = []  # grad_norm weighting is refused for replicates (replicate_rules)
        self.optimizer = build_optimizer(cfg.optimizer)
        self.optimizer.build(self.vars)
        self.step_names = (
            ["loss/total"] + [f"loss/{t}" for t in self.loss_terms] + ["grad_norm/total", "weight_norm/total"]
        )
        compiled = dict(jit_compile=cfg.training.jit_compile, autograph=False)
        self._step = tf.function(self._step_impl, **compiled)
        self._measure = tf.function(self._measure_impl, **compiled)
        self._update_ratio = tf.function(self._update_ratio_impl, autograph=False)
        self._predict = tf.function(lambda x: self.model(x), reduce_retracing=True, autograph=False)

        self.rngs = [np.random.default_rng(s) for s in self.seeds]
        self.train_points = [self.problem.sample(rng) for rng in self.rngs]
        n_res = len(self.train_points[0]["residual"])
        t = cfg.training
        bs = t.batch_size
        self.batch_size = None if (bs is None or bs >= n_res or t.resample) else bs
        self.steps_per_epoch = 1 if self.batch_size is None else n_res // self.batch_size
        self.steps_budget = t.steps or (t.epochs * self.steps_per_epoch if t.epochs else 1000)
        self.eval_x = self.problem.eval_points()
        exact = self.problem.exact_numpy(self.eval_x)
        self.eval_u = None if exact is None else exact.astype(cfg.model.dtype)
        self.warnings = Trainer._static_warnings(self)
        self._final: dict[str, list] | None = None  # end-of-run evaluations, computed once

    # ------------------------------------------------------------------ losses, per replicate (k,)
    def _losses(self, points):
        terms, derivs = self.problem.residuals(self.model, points)
        delta = self.cfg.loss.huber_delta
        k = self.k
        losses = {}
        for name in self.terms:
            r, f = terms[name], self.forms[name]
            parts = r if isinstance(r, list) else [r]
            losses[name] = tf.add_n([f(per_replicate(p, k), delta, axis=0) for p in parts])
        reg = self.cfg.regularization
        if reg.l2 > 0:
            losses["l2"] = reg.l2 * tf.add_n([tf.reduce_sum(tf.square(w), axis=range(1, w.shape.rank)) for w in self.penalized])
        if reg.l1 > 0:
            losses["l1"] = reg.l1 * tf.add_n([tf.reduce_sum(tf.abs(w), axis=range(1, w.shape.rank)) for w in self.penalized])
        return losses, derivs, terms

    def _weighted(self, losses):
        out = {t: self.lambdas[t] * losses[t] for t in self.terms}
        out.update({t: losses[t] for t in self.penalty_terms})
        return out

    def _total(self, losses):
        return tf.add_n(list(self._weighted(losses).values()))

    _gradients = Trainer._gradients  # None -> zeros, as in a single run

    @staticmethod
    def _bcast(x, like):
        return tf.reshape(x, [-1] + [1] * (like.shape.rank - 1))

    # ------------------------------------------------------------------ compiled step
    def _step_impl(self, points):
        for b, v in zip(self.backup, self.vars):
            b.assign(v)
        with tf.GradientTape() as tape:
            losses, _, _ = self._losses(points)
            total = self._total(losses)
            summed = tf.reduce_sum(total)  # inside the tape: its gradient is each replicate's own
        grads = self._gradients(tape, summed, self.vars)
        gnorm = replicate_norm(grads)
        wnorm = replicate_norm(self.vars)
        reg = self.cfg.regularization
        if reg.clip_norm is not None:  # tf.clip_by_global_norm's formula, one factor per replicate
            c = tf.constant(reg.clip_norm, gnorm.dtype)
            scale = c * tf.minimum(1.0 / gnorm, 1.0 / c) + (gnorm - gnorm)
            grads = [g * self._bcast(scale, g) for g in grads]
        self.optimizer.apply(grads, self.vars)
        if reg.max_norm is not None:
            for w in self.kernels:
                norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))
                w.assign(w * tf.minimum(1.0, reg.max_norm / tf.maximum(norms, 1e-12)))
        for v, b in zip(self.vars, self.backup):  # frozen replicates keep their weights
            v.assign(tf.where(self._bcast(self.active, v), v, b))
        out = [total] + [losses[t] for t in self.loss_terms] + [gnorm, wnorm, replicate_norm(self.vars)]
        return tf.stack([tf.cast(o, self.dtype) for o in out], axis=1)  # (k, len(step_names) + 1)

    # ------------------------------------------------------------------ periodic diagnostics
    def _measure_impl(self, points):
        diag = self.cfg.diagnostics
        k = self.k
        out = {}
        with tf.GradientTape(persistent=True) as tape:
            losses, derivs, _ = self._losses(points)
            summed = {t: tf.reduce_sum(w) for t, w in self._weighted(losses).items()}
        per_term = {t: self._gradients(tape, summed[t], self.vars) for t in self.loss_terms}
        del tape
        total_grads = [tf.add_n([per_term[t][i] for t in self.loss_terms]) for i in range(len(self.vars))]
        if diag.per_term_grads:
            for t in self.loss_terms:
                out[f"grad_norm/{t}"] = replicate_norm(per_term[t])
        if diag.per_layer:
            for name, v, g in zip(self.var_names, self.vars, total_grads):
                out[f"weight_norm/{name}"] = replicate_norm([v])
                out[f"grad_norm/{name}"] = replicate_norm([g])
        if diag.derivatives:
            for name, d in derivs.items():
                out[f"deriv/{name}"] = tf.reduce_mean(tf.abs(per_replicate(d, k)), axis=0)
        return out

    def _update_ratio_impl(self):
        nan = tf.constant(float("nan"), self.dtype)
        out = {}
        for n, v, b in zip(self.var_names, self.vars, self.backup):
            nb, nd = replicate_norm([b]), replicate_norm([v - b])
            out[f"update_ratio/{n}"] = tf.where(nb > 0, nd / tf.maximum(nb, 1e-30), nan)
        return out

    def diagnostics(self, points) -> list[dict[str, float]]:
        """The periodic metrics of every replicate: one flat dict per replicate."""
        values = {key: v.numpy() for key, v in self._measure(points).items()}
        rows = [{key: float(v[r]) for key, v in values.items()} for r in range(self.k)]
        if self.cfg.diagnostics.error and self.eval_u is not None:
            for row, err in zip(rows, self.rel_l2_errors()):
                if err is not None:
                    row["error/rel_l2"] = err
        return rows

    def update_ratios(self) -> list[dict[str, float]]:
        values = {key: v.numpy() for key, v in self._update_ratio().items()}
        return [{key: float(v[r]) for key, v in values.items()} for r in range(self.k)]

    # ------------------------------------------------------------------ data
    def _tensors(self, per_replica_sets: list[dict[str, np.ndarray]]) -> dict[str, tf.Tensor]:
        return {key: tf.constant(interleave([s[key] for s in per_replica_sets]), self.dtype) for key in per_replica_sets[0]}

    def _replica_batches(self, r: int) -> Iterator[dict[str, np.ndarray]]:
        """Replicate r's point sets per step, drawn as Trainer._batches draws them for its seed."""
        rng, pts = self.rngs[r], self.train_points[r]
        if self.cfg.training.resample:
            while True:
                yield self.problem.sample(rng)
        if self.batch_size is None:
            while True:
                yield pts
        res, bs = pts["residual"], self.batch_size
        while True:
            perm = rng.permutation(len(res))
            for i in range(self.steps_per_epoch):
                yield {**pts, "residual": res[perm[i * bs : (i + 1) * bs]]}

    def batches(self) -> Iterator[dict[str, tf.Tensor]]:
        if self.batch_size is None and not self.cfg.training.resample:
            full = self._tensors(self.train_points)
            while True:
                yield full
        gens = [self._replica_batches(r) for r in range(self.k)]
        if self.cfg.training.resample:
            while True:
                yield self._tensors([next(g) for g in gens])
        # mini-batches: only the residual points change from step to step; the other sets go whole
        full = self._tensors(self.train_points)
        while True:
            res = interleave([next(g)["residual"] for g in gens])
            yield {**full, "residual": tf.constant(res, self.dtype)}

    # ------------------------------------------------------------------ freezing and forensics
    def freeze(self, replicas: list[int], restore: bool = False) -> None:
        """Stop updating ``replicas``; ``restore``: first put back their pre-step weights."""
        mask = np.zeros(self.k, bool)
        mask[replicas] = True
        m = tf.constant(mask)
        if restore:
            for v, b in zip(self.vars, self.backup):
                v.assign(tf.where(self._bcast(m, v), b, v))
        self.active.assign(tf.logical_and(self.active, tf.logical_not(m)))

    def replica_vars(self, r: int) -> list[tf.Tensor]:
        return [v[r] for v in self.vars]

    def locate_nonfinite(self, r: int, points, vec: np.ndarray) -> str:
        """Name replicate r's first non-finite quantity of the failing step (as a single run's
        :meth:`~pinnlab.training.diagnostics.Diagnostics.locate_nonfinite`); restores its
        pre-step weights and freezes it."""
        names = self.step_names + ["weight_norm/updated"]
        fallback = next((n for n, x in zip(names, vec) if not np.isfinite(x)), names[0])
        post = [n for n, v in zip(self.var_names, self.vars) if not np.isfinite(v[r].numpy()).all()]
        self.freeze([r], restore=True)
        k = self.k

        def rows(t):
            return per_replicate(t, k)[:, r]

        checks = [(f"output/{name}", rows(self.model(pts))) for name, pts in points.items()]
        with tf.GradientTape() as tape:
            losses, derivs, terms = self._losses(points)
            total = self._total(losses)
            summed = tf.reduce_sum(total)
        checks += [(f"deriv/{n}", rows(d)) for n, d in derivs.items()]
        for n, t in terms.items():
            checks += [(f"residual/{n}", rows(p)) for p in (t if isinstance(t, list) else [t])]
        checks += [(f"loss/{t}", losses[t][r]) for t in self.loss_terms] + [("loss/total", total[r])]
        grads = self._gradients(tape, summed, self.vars)
        checks += [(f"grad/{n}", g[r]) for n, g in zip(self.var_names, grads)]
        checks.append(("grad_norm/total", replicate_norm(grads)[r]))
        for name, x in checks:
            if not bool(tf.reduce_all(tf.math.is_finite(x))):
                return name
        return f"weight/{post[0]}" if post else fallback

    # ------------------------------------------------------------------ end-of-run evaluation
    def rel_l2_errors(self) -> list[float | None]:
        """‖u_r − u_exact‖ / ‖u_exact‖ on the evaluation grid for every replicate."""
        if self.eval_u is None:
            return [None] * self.k
        x = np.repeat(self.eval_x, self.k, axis=0)  # every replicate on the same grid, interleaved
        u = self._predict(tf.constant(x, self.dtype)).numpy().reshape(-1, self.k)
        return [relative_l2(u[:, r : r + 1], self.eval_u) for r in range(self.k)]

    def _pde_mean_squares_impl(self, x, n_first: int):
        # training and held-out points in one traced call (eager nested tapes cost ~1 s for k = 8)
        terms, _ = self.problem.pde_residuals(self.model, x)
        first = tf.add_n([tf.reduce_mean(tf.square(per_replicate(t[:n_first], self.k)), axis=0) for t in terms.values()])
        second = tf.add_n([tf.reduce_mean(tf.square(per_replicate(t[n_first:], self.k)), axis=0) for t in terms.values()])
        return first, second

    def heldout_residuals(self) -> list[tuple[float | None, float | None]]:
        """(held-out mean square PDE residual, its ratio to the training points') per replicate."""
        if self.problem.params_dict().get("literal"):
            return [(None, None)] * self.k
        train_x = interleave([p["residual"] for p in self.train_points])
        n = self.cfg.divergence.heldout_points
        held_x = interleave([self.problem.heldout(np.random.default_rng(s + 7919), n) for s in self.seeds])
        x = tf.constant(np.concatenate([train_x, held_x]), self.dtype)
        train, held = (v.numpy() for v in tf.function(self._pde_mean_squares_impl, autograph=False)(x, len(train_x)))
        out = []
        for a, b in zip(train, held):
            a, b = float(a), float(b)
            out.append((None, None) if not (math.isfinite(a) and math.isfinite(b)) else (b, b / max(a, 1e-30)))
        return out

    def final_evaluations(self) -> dict[str, list]:
        """Both end-of-run evaluations of every replicate, computed once after training."""
        if self._final is None:
            self._final = {"rel_l2": self.rel_l2_errors(), "heldout": self.heldout_residuals()}
        return self._final

    # ------------------------------------------------------------------ training
    def fit(self):
        from pinnlab.training.replica_loop import ReplicaLoop

        return ReplicaLoop(self).run()
