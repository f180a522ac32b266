"""The trainer: a compiled, deterministic step with stability diagnostics.

Data flow of one step (first-order optimizers)::

    points ──▶ problem.residuals(model) ──▶ {term: r} ──formulation──▶ {term: L} ──λ──▶ total
                                                                       │
              grads = ∂total/∂θ (nested tapes inside: derivatives.py) ◀┘
              backup ← θ;  θ ← optimizer(θ, clip(grads));  max-norm
              returns [total, L_terms…, ‖g‖, ‖θ‖, λ…, ‖θ_new‖]  (one small vector)

Design notes
------------
* The compiled step does only what every step needs: the losses, the global gradient and weight
  norms (which double as the finite check: a norm is finite iff every entry is), and a copy of the
  weights taken before the update.  It never branches on finiteness; what happens when a value is
  non-finite (restore the copy, replay the step to name the culprit) is in :mod:`.diagnostics`.
* The trainer builds the parts (problem, model, losses, optimizer, the compiled functions, the
  point sets) and exposes them; it does not run the loop itself.  ``fit`` picks a loop strategy
  (:mod:`.loops`: first-order or L-BFGS) and a :class:`~pinnlab.training.recorder.Recorder`
  (history, divergence monitor, callbacks, the result), so the two optimizers share one
  bookkeeping instead of two copies of it.
* Expensive diagnostics (per-layer norms, one backward pass per loss term, derivative magnitudes,
  update ratios, the error on the evaluation grid) run in a second compiled function every
  ``diagnostics.every`` steps, owned by :class:`~pinnlab.training.diagnostics.Diagnostics`.
* The trainer knows nothing of MLflow or Optuna: it reports through :class:`Callback` and returns
  a :class:`RunResult`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from pinnlab.config import RunConfig, budget, load_config
from pinnlab.config.replicates import combine, replicate_config
from pinnlab.core.errors import ConfigError
from pinnlab.numerics.losses import formulation
from pinnlab.numerics.models import mlp_kwargs
from pinnlab.numerics.optimizers import build_optimizer
from pinnlab.problems import resolve_problem
from pinnlab.training.callbacks import Callback
from pinnlab.training.causal import causal_loss
from pinnlab.training.causes import static_causes
from pinnlab.training.compiled import Compiled
from pinnlab.training.diagnostics import Diagnostics
from pinnlab.training.loops import chain
from pinnlab.training.ntk_weighting import NTKWeighting
from pinnlab.training.recorder import Recorder
from pinnlab.training.replicas import ReplicaView, Stacked, axis_for
from pinnlab.training.result import RunResult

__all__ = ["Trainer", "train"]


class Trainer:
    """Builds problem, model, losses and optimizer from a RunConfig and trains."""

    def __init__(
        self,
        config: RunConfig,
        callbacks: Sequence[Callback] = (),
        replica_callbacks: Sequence = (),
        replica_configs: Sequence[RunConfig] | None = None,
    ):
        """``replica_configs``: one config per replicate when they differ in more than the seed (a
        sweep's batch of trials, :func:`pinnlab.training.replicas.group_key`); by default replicate r
        is ``config`` with seed ``training.seed + r``, r < ``training.replicates``."""
        self.cfg = cfg = config
        self.callbacks = list(callbacks)
        # per replicate: callbacks that hear that replicate as a run of its own (a sweep's per-seed tracker)
        self.replica_callbacks = [list(c) for c in replica_callbacks]
        if cfg.training.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.problem = resolve_problem(cfg.problem.name, cfg.problem.params)
        self.dtype = tf.as_dtype(cfg.model.dtype)
        self.k = k = len(replica_configs) if replica_configs else cfg.training.replicates
        self.axis = axis_for(k)
        self._given_configs = list(replica_configs) if replica_configs else None
        self.replica_cfgs = self._replica_configs()
        self.seeds = [c.training.seed for c in self.replica_cfgs]
        self.model, self.vars, self.var_names = self.axis.model(self.seeds, mlp_kwargs(cfg.model, self.problem))
        self.kernels = [v for v, n in zip(self.vars, self.var_names) if n.endswith("kernel")]
        reg = cfg.regularization
        self.penalized = self.vars if reg.include_biases else self.kernels
        self.backup = [tf.Variable(v, trainable=False, name=f"backup_{i}") for i, v in enumerate(self.vars)]
        self.active = tf.Variable(tf.ones((k,), tf.bool), trainable=False, name="active")

        self.terms = list(self.problem.term_names())
        self.penalty_terms = [t for t, c in (("l2", reg.l2), ("l1", reg.l1)) if c > 0]
        self.loss_terms = self.terms + self.penalty_terms
        lc = cfg.loss
        self.forms = {t: formulation(lc.formulation_of(t)) for t in self.terms}
        self.lambdas = {
            t: tf.Variable(
                self._per_replica(lambda c: c.loss.weights.get(t, 1.0)),
                trainable=False,
                dtype=self.dtype,
                name=f"lambda_{t}",
            )
            for t in self.terms
        }
        # per-replicate numeric settings (equal across replicates unless given replica_configs)
        self.l2 = self._per_replica(lambda c: c.regularization.l2)
        self.l1 = self._per_replica(lambda c: c.regularization.l1)
        self.clip_norm = None if reg.clip_norm is None else self._per_replica(lambda c: c.regularization.clip_norm)
        self.max_norm = None if reg.max_norm is None else self._per_replica(lambda c: c.regularization.max_norm)
        # a replicate's learning rate as a multiple of the optimizer's (Keras holds one); its update is
        # scaled by it, exact for every optimizer here (each update is linear in the rate: SGD's
        # momentum buffer, Adam's and RMSprop's moments and AdamW's decay do not depend on it)
        rates = np.array([c.optimizer.learning_rate for c in self.replica_cfgs], np.float64)
        self.lr_scale = None if np.all(rates == rates[0]) else (rates / rates[0]).astype(self.dtype.as_numpy_dtype)
        self.adaptive = (
            [t for t in self.terms if t not in self.problem.residual_terms]
            if lc.weighting.scheme == "grad_norm"
            else []
        )
        if lc.weighting.scheme == "ntk":  # NTK weights every term (pinnlab.training.ntk_weighting)
            self.adaptive = list(self.terms)
        # causal weighting of the residual by time (pinnlab.training.causal): its smallest weight per step
        self.causal = lc.weighting.scheme == "causal"
        self._causal_w_min = None
        self.optimizer = build_optimizer(cfg.optimizer)
        if self.optimizer is not None:
            self.optimizer.build(self.vars)

        self.step_names = (
            ["loss/total"]
            + [f"loss/{t}" for t in self.loss_terms]
            + ["grad_norm/total", "weight_norm/total"]
            + [f"lambda/{t}" for t in self.adaptive]
            + (["causal/w_min"] if self.causal else [])
        )
        # Traced without AutoGraph: every branch in pinnlab's step is on Python values, and skipping
        # the source conversion cuts the first trace from ~2.5 s to ~0.6 s (paid by every sweep trial).
        jit = cfg.training.jit_compile
        compiled = dict(jit_compile=jit, autograph=False)
        # The public hooks the loops call through the instance, so a benchmark may wrap them there
        # to time them: train_step(points) (compiled), diagnose(step, points), update_ratio(),
        # batches() (each step's point sets) and predictor(x) (the network on a tensor).
        self.train_step = tf.function(self._step_impl, **compiled)
        self._update_lambdas = tf.function(self._update_lambdas_impl, **compiled)
        self.diagnostics = Diagnostics(self)
        self.diagnose = self.diagnostics
        self.update_ratio = self.diagnostics.update_ratio
        self.predictor = Compiled(
            lambda x: self.model(x), eager_calls=cfg.diagnostics.eager_calls, reduce_retracing=True, autograph=False
        )

        self.eval_x = self.problem.eval_points()
        exact = self.problem.exact_numpy(self.eval_x)
        self.eval_u = None if exact is None else exact.astype(cfg.model.dtype)
        self._prepare_run()
        # NTK weights probe the point layout once (the graph's, which a reused trainer keeps)
        self.ntk = NTKWeighting(self) if lc.weighting.scheme == "ntk" or cfg.diagnostics.ntk_trace else None
        if lc.weighting.scheme == "ntk":
            self._update_lambdas = self.ntk.update

    def _replica_configs(self) -> list[RunConfig]:
        if self._given_configs is not None:
            return self._given_configs
        if self.k == 1:
            return [self.cfg]

        return [replicate_config(self.cfg, r) for r in range(self.k)]

    def _per_replica(self, get):
        """A numeric setting of every replicate as the axis' per-replicate value (a scalar for one)."""
        values = [float(get(c)) for c in self.replica_cfgs]
        return values[0] if self.k == 1 else np.array(values)

    def _prepare_run(self) -> None:
        """The per-run state that is not the graph: points, batching, budget, warnings.

        Also called by :mod:`pinnlab.training.reuse` when a built trainer takes the next config.
        Replicate r draws its points from its own ``default_rng(seed + r)``, as a separate run does;
        ``train_points`` are the replicates' sets in the axis' layout.
        """
        cfg = self.cfg
        self.replica_cfgs = self._replica_configs()
        self.seeds = [c.training.seed for c in self.replica_cfgs]
        self.rngs = [np.random.default_rng(s) for s in self.seeds]
        self.replica_points = [self.problem.sample(rng) for rng in self.rngs]
        self.train_points = self._layout(self.replica_points)
        n_res = len(self.replica_points[0]["residual"])
        self.batch_size, self.steps_per_epoch, self.steps_budget = budget(cfg, n_res)
        # what the config alone says will go wrong: warnings now, causes on the result
        self.static_causes = static_causes(cfg, self.problem)
        self.warnings = [c.evidence for c in self.static_causes]
        self.active.assign(tf.ones((self.k,), tf.bool))
        self._final: dict[str, list] | None = None  # end-of-run evaluations, computed once
        self.diagnostics.restart()

    # ------------------------------------------------------------------ losses
    def _losses(self, points: dict[str, tf.Tensor]):
        terms, derivs = self.problem.residuals(self.model, points)
        delta = self.cfg.loss.huber_delta
        losses = {}
        for name in self.terms:
            r = terms[name]
            f = self.forms[name]
            term = self.axis.term
            if self.causal and name in self.problem.residual_terms:
                losses[name], self._causal_w_min = self._causal_term(r, points["residual"])
                continue
            losses[name] = tf.add_n([term(f, p, delta) for p in r]) if isinstance(r, list) else term(f, r, delta)
        losses.update(self.axis.penalties(self.penalized, self.l2, self.l1))
        return losses, derivs, terms

    def _causal_term(self, r, x):
        """The causally weighted residual loss and its smallest weight (pinnlab.training.causal)."""

        if isinstance(r, list) or r.shape[0] != x.shape[0]:  # a residual not one row per residual point
            raise ConfigError(
                "loss.weighting.scheme",
                f"'causal' needs {self.problem.name}'s residual as one value per "
                "point of its 'residual' set, to find each value's time",
            )
        w = self.cfg.loss.weighting
        i = self.problem.coords.index("t")
        lo, hi = self.problem.domain
        return causal_loss(r, x[:, i], (float(lo[i]), float(hi[i])), w.causal_chunks, w.causal_epsilon, self.k)

    def _total(self, losses: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = [self.lambdas[t] * losses[t] for t in self.terms] + [losses[t] for t in self.penalty_terms]
        return tf.add_n(parts)

    def _weighted(self, losses: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """λ_t·L_t per loss term (penalties unweighted): the terms of ``_total``, apart."""
        weighted = {t: self.lambdas[t] * losses[t] for t in self.terms}
        weighted.update({t: losses[t] for t in self.penalty_terms})
        return weighted

    def _gradients(self, tape, target, variables):
        grads = tape.gradient(target, variables)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    # ------------------------------------------------------------------ compiled functions
    def _step_impl(self, points):
        axis = self.axis
        for b, v in zip(self.backup, self.vars):
            b.assign(v)
        with tf.GradientTape() as tape:
            losses, _, _ = self._losses(points)
            total = self._total(losses)
            summed = axis.total(total)  # inside the tape: its gradient is each replicate's own
        grads = self._gradients(tape, summed, self.vars)
        gnorm = axis.norm(grads)
        wnorm = axis.norm(self.vars)
        if self.clip_norm is not None:
            grads = axis.clip(grads, self.clip_norm, gnorm)
        self.optimizer.apply(grads, self.vars)
        if self.lr_scale is not None:  # each replicate's own learning rate
            for v, b in zip(self.vars, self.backup):
                v.assign(b + (v - b) * Stacked.bcast(tf.constant(self.lr_scale), v))
        if self.max_norm is not None:
            max_norm = (
                self.max_norm if self.k == 1 else Stacked.bcast(tf.constant(self.max_norm, self.dtype), self.kernels[0])
            )
            for w in self.kernels:
                w.assign(w * tf.minimum(1.0, max_norm / tf.maximum(axis.column_norms(w), 1e-12)))
        axis.keep(self.vars, self.backup, self.active)
        out = [total] + [losses[t] for t in self.loss_terms] + [gnorm, wnorm]
        out += [self.lambdas[t] for t in self.adaptive]
        if self.causal:
            out.append(self._causal_w_min)  # set by _losses in this trace
        out.append(axis.norm(self.vars))  # finite check of the updated weights
        # (k, len(step_names) + 1): one row per replicate
        return tf.reshape(tf.stack([tf.cast(o, self.dtype) for o in out], axis=-1), (self.k, -1))

    def _update_lambdas_impl(self, points):
        alpha = self.cfg.loss.weighting.alpha
        axis = self.axis
        with tf.GradientTape(persistent=True) as tape:
            losses, _, _ = self._losses(points)
            res = axis.total(tf.add_n([self.lambdas[t] * losses[t] for t in self.problem.residual_terms]))
            weighted = {t: axis.total(self.lambdas[t] * losses[t]) for t in self.adaptive}
        g_res = self._gradients(tape, res, self.kernels)
        for t in self.adaptive:
            hat = axis.grad_norm_hat(g_res, self._gradients(tape, weighted[t], self.kernels))
            self.lambdas[t].assign(alpha * self.lambdas[t] + (1 - alpha) * tf.cast(hat, self.dtype))
        del tape
        return tf.stack([self.lambdas[t] for t in self.adaptive])

    # ------------------------------------------------------------------ data
    def _layout(self, per_replica_sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The replicates' point sets as one set in the axis' layout (one replicate: its own)."""
        return {key: self.axis.interleave([s[key] for s in per_replica_sets]) for key in per_replica_sets[0]}

    def _tensors(self, sets: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v, self.dtype) for k, v in sets.items()}

    def _replica_batches(self, r: int) -> Iterator[dict[str, np.ndarray]]:
        """Replicate r's point sets per step.  Only ``residual`` is mini-batched; other sets go whole."""
        rng, pts = self.rngs[r], self.replica_points[r]
        if self.cfg.training.resample:
            while True:
                yield self.problem.sample(rng)
        res, bs = pts["residual"], self.batch_size
        while True:
            perm = rng.permutation(len(res))
            for i in range(self.steps_per_epoch):
                yield {**pts, "residual": res[perm[i * bs : (i + 1) * bs]]}

    def batches(self) -> Iterator[dict[str, tf.Tensor]]:
        """Point sets for each step, every replicate's drawn from its own generator."""
        full = self._tensors(self.train_points)
        if self.batch_size is None and not self.cfg.training.resample:
            while True:
                yield full
        gens = [self._replica_batches(r) for r in range(self.k)]
        if self.cfg.training.resample:
            while True:
                yield self._tensors(self._layout([next(g) for g in gens]))
        while True:  # mini-batches: only the residual points change from step to step
            res = self.axis.interleave([next(g)["residual"] for g in gens])
            yield {**full, "residual": tf.constant(res, self.dtype)}

    def freeze(self, replicas: Sequence[int], restore: bool = False) -> None:
        """Stop updating ``replicas``; ``restore``: first put back their pre-step weights."""
        mask = np.zeros(self.k, bool)
        mask[list(replicas)] = True
        m = tf.constant(mask)
        if restore:
            if self.k == 1:
                for v, b in zip(self.vars, self.backup):
                    v.assign(b)
            else:
                for v, b in zip(self.vars, self.backup):
                    v.assign(tf.where(Stacked.bcast(m, v), b, v))
        self.active.assign(tf.logical_and(self.active, tf.logical_not(m)))

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> list[np.ndarray]:
        """The trainable variables' values, in ``var_names`` order."""
        return [v.numpy() for v in self.vars]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Start from these values instead of the initializer's (a warm start, e.g. a curriculum).

        ``weights`` come from :meth:`get_weights` of a trainer of the same architecture.
        """
        if len(weights) != len(self.vars):
            raise ValueError(f"`weights` must have {len(self.vars)} arrays (one per variable), but got {len(weights)}.")
        for v, w, name in zip(self.vars, weights, self.var_names):
            if tuple(v.shape) != tuple(np.shape(w)):
                raise ValueError(f"`weights` for {name} must have shape {tuple(v.shape)}, but got {np.shape(w)}.")
            v.assign(np.asarray(w, dtype=self.dtype.as_numpy_dtype))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's output ``u`` at points ``x`` (shape ``(n, d)`` -> ``(n, 1)``)."""
        return self.predictor(tf.constant(np.asarray(x), self.dtype)).numpy()

    def term_gradients(self, points: Mapping[str, np.ndarray] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """∂(λ_t·L_t)/∂W of every loss term t at the current weights, per variable name.

        ``points`` default to the training points drawn at construction.  Eager (for analysis, not
        for the loop): ``{"residual": {"dense/kernel": array, ...}, "boundary": {...}}``.
        """
        tensors = self._tensors(dict(points) if points is not None else self.train_points)
        with tf.GradientTape(persistent=True) as tape:
            weighted = self._weighted(self._losses(tensors)[0])
        out = {
            t: {n: g.numpy() for n, g in zip(self.var_names, self._gradients(tape, weighted[t], self.vars))}
            for t in self.loss_terms
        }
        del tape
        return out

    # ------------------------------------------------------------------ evaluation
    def rel_l2_error(self) -> float | None:
        """‖u − u_exact‖ / ‖u_exact‖ on the evaluation grid (replicate 0); None without an exact solution."""
        return self.diagnostics.rel_l2_errors()[0]

    def heldout_residual(self) -> tuple[float | None, float | None]:
        """Mean square PDE residual on held-out points, and its ratio to the training points' (replicate 0)."""
        return self.diagnostics.heldout_residuals()[0]

    def final_evaluations(self) -> dict[str, list]:
        """Both end-of-run evaluations of every replicate, computed once after training."""
        if self._final is None:
            d = self.diagnostics
            self._final = {"rel_l2": d.rel_l2_errors(), "heldout": d.heldout_residuals()}
        return self._final

    # ------------------------------------------------------------------ training
    def fit(self) -> RunResult:
        """Train for ``steps_budget`` steps (or until a verdict or a callback stops the run).

        One :class:`Recorder` per replicate (its history, monitor and result); the run's callbacks
        hear replicate 0 while it trains and, with k > 1, the combined result at the end
        (:func:`pinnlab.config.replicates.combine`).
        """
        loops = chain(self)
        cbs = self.replica_callbacks or [[] for _ in range(self.k)]
        recorders = []
        for r in range(self.k):
            run_cbs = self.callbacks if r == 0 else []
            recorders.append(
                Recorder(
                    ReplicaView(self, r),
                    self.steps_budget,
                    unit=loops[0].unit,
                    callbacks=[*run_cbs, *cbs[r]],
                    end_callbacks=[*(run_cbs if self.k == 1 else []), *cbs[r]],
                    run_callbacks=self.callbacks,
                )
            )
        t0 = time.perf_counter()
        for i, loop in enumerate(loops):  # one loop, or a chain's phases while the run goes on
            if i:  # a later phase begins where the one before stopped (.loops, "Chains")
                at = recorders[0].steps_run
                loop.resume_at(at)
                for rec in recorders:
                    rec.phase_starts.append(at)
            loop.run(recorders)
            if all(rec.ended for rec in recorders):
                break
        results = [rec.finish() for rec in recorders]
        if self.k == 1:
            return results[0]

        result = combine(self.cfg, results, wall_seconds=time.perf_counter() - t0)
        for cb in self.callbacks:
            cb.on_train_end(result)
        return result


def train(config=None, overrides: Sequence[str] = (), callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train one run: ``config`` is a RunConfig, a preset name, a YAML path or a mapping."""
    cfg = config if isinstance(config, RunConfig) and not overrides else load_config(config or "poisson2d", overrides)
    return Trainer(cfg, callbacks).fit()
