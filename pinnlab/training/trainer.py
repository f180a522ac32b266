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
  weights taken before the update.  It never branches on finiteness.
* When the host sees a non-finite value it restores the copy (so a non-finite update is never
  kept: the run ends in its last finite state) and replays the failing step once, tensor by
  tensor, to name the first non-finite quantity in computation order (network output, derivatives,
  residuals, losses, gradients, updated weights).  The replay reproduces the step exactly because
  runs are deterministic.
* Expensive diagnostics (per-layer norms, one backward pass per loss term, derivative magnitudes,
  the error on the evaluation grid) run in a second compiled function every ``diagnostics.every``
  steps.
* The trainer knows nothing of MLflow or Optuna: it reports through :class:`Callback` and returns
  a :class:`RunResult`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from pinnlab.config import RunConfig, load_config
from pinnlab.losses import formulation, grad_norm_lambda_hat, penalties
from pinnlab.models import ACTIVATIONS, build_mlp, uniform_moments, variable_name
from pinnlab.optimizers import build_optimizer
from pinnlab.problems import resolve_problem
from pinnlab.training.callbacks import Callback, StopTraining
from pinnlab.training.divergence import DivergenceMonitor, Verdict, classify_finished
from pinnlab.training.ntk_weighting import NTKWeighting
from pinnlab.training.result import RunResult

__all__ = ["Trainer", "train"]

log = logging.getLogger(__name__)


def _norm(t: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(t)))


def _global_norm(tensors) -> tf.Tensor:
    """‖concat(tensors)‖: one reduction instead of one per tensor (XLA emits ~50 fewer kernels)."""
    return _norm(tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0))


def _finite(t: tf.Tensor) -> bool:
    return bool(tf.reduce_all(tf.math.is_finite(t)))


class _Stop(Exception):
    """Raised inside the L-BFGS objective to end the optimisation."""


class Trainer:
    """Builds problem, model, losses and optimizer from a RunConfig and trains."""

    def __init__(self, config: RunConfig, callbacks: Sequence[Callback] = ()):
        self.cfg = cfg = config
        self.callbacks = list(callbacks)
        if cfg.training.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.problem = resolve_problem(cfg.problem.name, cfg.problem.params)
        self.dtype = tf.as_dtype(cfg.model.dtype)
        m = cfg.model
        self.model = build_mlp(
            input_dim=len(self.problem.coords),
            width=m.width,
            depth=m.depth,
            activation=m.activation,
            output_activation=m.output_activation,
            initializer=m.initializer,
            dtype=m.dtype,
            seed=cfg.training.seed,
            standardize=uniform_moments(*self.problem.domain) if m.standardize else None,
        )
        self.vars = list(self.model.trainable_variables)
        self.var_names = [variable_name(v) for v in self.vars]
        self.kernels = [v for v, n in zip(self.vars, self.var_names) if n.endswith("kernel")]
        reg = cfg.regularization
        self.penalized = self.vars if reg.include_biases else self.kernels
        self.backup = [tf.Variable(v, trainable=False, name=f"backup_{i}") for i, v in enumerate(self.vars)]

        self.terms = list(self.problem.term_names())
        self.penalty_terms = [t for t, c in (("l2", reg.l2), ("l1", reg.l1)) if c > 0]
        self.loss_terms = self.terms + self.penalty_terms
        lc = cfg.loss
        self.forms = {t: formulation(lc.formulations.get(t, lc.formulation)) for t in self.terms}
        self.lambdas = {
            t: tf.Variable(float(lc.weights.get(t, 1.0)), trainable=False, dtype=self.dtype, name=f"lambda_{t}")
            for t in self.terms
        }
        self.adaptive = (
            [t for t in self.terms if t not in self.problem.residual_terms] if lc.weighting.scheme == "grad_norm" else []
        )
        if lc.weighting.scheme == "ntk":  # NTK weights every term (pinnlab.training.ntk_weighting)
            self.adaptive = list(self.terms)
        self.optimizer = build_optimizer(cfg.optimizer)
        if self.optimizer is not None:
            self.optimizer.build(self.vars)

        self.step_names = (
            ["loss/total"]
            + [f"loss/{t}" for t in self.loss_terms]
            + ["grad_norm/total", "weight_norm/total"]
            + [f"lambda/{t}" for t in self.adaptive]
        )
        # Traced without AutoGraph: every branch in pinnlab's step is on Python values, and skipping
        # the source conversion cuts the first trace from ~2.5 s to ~0.6 s (paid by every sweep trial).
        jit = cfg.training.jit_compile
        compiled = dict(jit_compile=jit, autograph=False)
        self._step = tf.function(self._step_impl, **compiled)
        self._diagnose = tf.function(self._diagnose_impl, **compiled)
        self._update_lambdas = tf.function(self._update_lambdas_impl, **compiled)
        self._update_ratio = tf.function(self._update_ratio_impl, autograph=False)
        self._predict = tf.function(lambda x: self.model(x), reduce_retracing=True, autograph=False)

        self.rng = np.random.default_rng(cfg.training.seed)
        self.train_points = self.problem.sample(self.rng)
        n_res = len(self.train_points["residual"])
        bs = cfg.training.batch_size
        self.batch_size = None if (bs is None or bs >= n_res or cfg.training.resample) else bs
        self.steps_per_epoch = 1 if self.batch_size is None else n_res // self.batch_size
        t = cfg.training
        self.steps_budget = t.steps or (t.epochs * self.steps_per_epoch if t.epochs else 1000)
        self.eval_x = self.problem.eval_points()
        exact = self.problem.exact_numpy(self.eval_x)
        self.eval_u = None if exact is None else exact.astype(cfg.model.dtype)
        self.warnings = self._static_warnings()
        self.ntk = NTKWeighting(self) if lc.weighting.scheme == "ntk" or cfg.diagnostics.ntk_trace else None
        if lc.weighting.scheme == "ntk":
            self._update_lambdas = self.ntk.update

    # ------------------------------------------------------------------ static checks
    def _static_warnings(self) -> list[str]:
        out = []
        cfg = self.cfg
        act = ACTIVATIONS.get(cfg.model.activation)
        order = self.problem.max_order
        if act.degenerate_for(order):
            out_act = ACTIVATIONS.get(cfg.model.output_activation)
            where = (
                "so those derivatives of the network are zero almost everywhere"
                if out_act.degenerate_for(2) or cfg.model.output_activation == "linear"
                else f"so they come only from the output activation {cfg.model.output_activation!r}"
            )
            out.append(
                f"model.activation {act.name!r}: its derivatives of order >= {act.vanishes_from} vanish almost "
                f"everywhere, but the residual of {self.problem.name} uses order {order} "
                f"({', '.join(self.problem.derivatives)}), {where}"
            )
        raw = [t for t in self.terms if cfg.loss.formulations.get(t, cfg.loss.formulation) == "raw"]
        if raw:
            out.append(
                f"loss.formulation 'raw' on {', '.join(raw)}: the mean of a residual is unbounded below; "
                "minimising it drives the residual towards -inf by growing the weights"
            )
        return out

    # ------------------------------------------------------------------ losses
    def _losses(self, points: dict[str, tf.Tensor]):
        terms, derivs = self.problem.residuals(self.model, points)
        delta = self.cfg.loss.huber_delta
        losses = {}
        for name in self.terms:
            r = terms[name]
            f = self.forms[name]
            losses[name] = tf.add_n([f(p, delta) for p in r]) if isinstance(r, list) else f(r, delta)
        reg = self.cfg.regularization
        losses.update(penalties(self.penalized, reg.l2, reg.l1))
        return losses, derivs, terms

    def _total(self, losses: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = [self.lambdas[t] * losses[t] for t in self.terms] + [losses[t] for t in self.penalty_terms]
        return tf.add_n(parts)

    def _gradients(self, tape, target, variables):
        grads = tape.gradient(target, variables)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    # ------------------------------------------------------------------ compiled functions
    def _step_impl(self, points):
        for b, v in zip(self.backup, self.vars):
            b.assign(v)
        with tf.GradientTape() as tape:
            losses, _, _ = self._losses(points)
            total = self._total(losses)
        grads = self._gradients(tape, total, self.vars)
        gnorm = _global_norm(grads)
        wnorm = _global_norm(self.vars)
        reg = self.cfg.regularization
        if reg.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, reg.clip_norm, use_norm=gnorm)
        self.optimizer.apply(grads, self.vars)
        if reg.max_norm is not None:
            for w in self.kernels:
                norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=0, keepdims=True))
                w.assign(w * tf.minimum(1.0, reg.max_norm / tf.maximum(norms, 1e-12)))
        out = [total] + [losses[t] for t in self.loss_terms] + [gnorm, wnorm]
        out += [self.lambdas[t] for t in self.adaptive]
        out.append(_global_norm(self.vars))  # finite check of the updated weights
        return tf.stack([tf.cast(o, self.dtype) for o in out])

    def _diagnose_impl(self, points):
        diag = self.cfg.diagnostics
        out: dict[str, tf.Tensor] = {}
        with tf.GradientTape(persistent=True) as tape:
            losses, derivs, _ = self._losses(points)
            weighted = {t: self.lambdas[t] * losses[t] for t in self.terms}
            weighted.update({t: losses[t] for t in self.penalty_terms})
        per_term = {t: self._gradients(tape, weighted[t], self.vars) for t in self.loss_terms}
        del tape
        total_grads = [tf.add_n([per_term[t][i] for t in self.loss_terms]) for i in range(len(self.vars))]
        if diag.per_term_grads:
            for t in self.loss_terms:
                out[f"grad_norm/{t}"] = tf.linalg.global_norm(per_term[t])
        if diag.per_layer:
            for name, v, g in zip(self.var_names, self.vars, total_grads):
                out[f"weight_norm/{name}"] = _norm(v)
                out[f"grad_norm/{name}"] = _norm(g)
        if diag.derivatives:
            for name, d in derivs.items():
                out[f"deriv/{name}"] = tf.reduce_mean(tf.abs(d))
        return out

    def _update_ratio_impl(self):
        # undefined (NaN, never logged) for a tensor that was exactly zero, e.g. biases at step 0
        nan = tf.constant(float("nan"), self.dtype)
        return {
            f"update_ratio/{n}": tf.where(_norm(b) > 0, _norm(v - b) / tf.maximum(_norm(b), 1e-30), nan)
            for n, v, b in zip(self.var_names, self.vars, self.backup)
        }

    def _update_lambdas_impl(self, points):
        alpha = self.cfg.loss.weighting.alpha
        with tf.GradientTape(persistent=True) as tape:
            losses, _, _ = self._losses(points)
            res = tf.add_n([self.lambdas[t] * losses[t] for t in self.problem.residual_terms])
            weighted = {t: self.lambdas[t] * losses[t] for t in self.adaptive}
        g_res = self._gradients(tape, res, self.kernels)
        for t in self.adaptive:
            hat = grad_norm_lambda_hat(g_res, self._gradients(tape, weighted[t], self.kernels))
            self.lambdas[t].assign(alpha * self.lambdas[t] + (1 - alpha) * tf.cast(hat, self.dtype))
        del tape
        return tf.stack([self.lambdas[t] for t in self.adaptive])

    # ------------------------------------------------------------------ data
    def _tensors(self, sets: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v, self.dtype) for k, v in sets.items()}

    def _batches(self) -> Iterator[dict[str, tf.Tensor]]:
        """Point sets for each step.  Only ``residual`` is mini-batched; other sets go whole."""
        if self.cfg.training.resample:
            while True:
                yield self._tensors(self.problem.sample(self.rng))
        full = self._tensors(self.train_points)
        if self.batch_size is None:
            while True:
                yield full
        res = self.train_points["residual"]
        bs = self.batch_size
        while True:
            perm = self.rng.permutation(len(res))
            for i in range(self.steps_per_epoch):
                yield {**full, "residual": tf.constant(res[perm[i * bs : (i + 1) * bs]], self.dtype)}

    # ------------------------------------------------------------------ forensics
    def _locate_nonfinite(self, points, fallback: str) -> str:
        """Name the first non-finite quantity of the failing step; restores the pre-step weights."""
        post = [n for n, v in zip(self.var_names, self.vars) if not _finite(v)]
        for v, b in zip(self.vars, self.backup):
            v.assign(b)
        checks: list[tuple[str, tf.Tensor]] = []
        for name, pts in points.items():
            checks.append((f"output/{name}", self.model(pts)))
        with tf.GradientTape() as tape:
            losses, derivs, terms = self._losses(points)
            total = self._total(losses)
        checks += [(f"deriv/{n}", d) for n, d in derivs.items()]
        for n, r in terms.items():
            checks += [(f"residual/{n}", p) for p in (r if isinstance(r, list) else [r])]
        checks += [(f"loss/{t}", losses[t]) for t in self.loss_terms] + [("loss/total", total)]
        grads = self._gradients(tape, total, self.vars)
        checks += [(f"grad/{n}", g) for n, g in zip(self.var_names, grads)]
        checks.append(("grad_norm/total", tf.linalg.global_norm(grads)))
        for name, t in checks:
            if not _finite(t):
                return name
        if post:
            return f"weight/{post[0]}"
        return fallback

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
        return self._predict(tf.constant(np.asarray(x), self.dtype)).numpy()

    def term_gradients(self, points: Mapping[str, np.ndarray] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """∂(λ_t·L_t)/∂W of every loss term t at the current weights, per variable name.

        ``points`` default to the training points drawn at construction.  Eager (for analysis, not
        for the loop): ``{"residual": {"dense/kernel": array, ...}, "boundary": {...}}``.
        """
        tensors = self._tensors(dict(points) if points is not None else self.train_points)
        with tf.GradientTape(persistent=True) as tape:
            losses, _, _ = self._losses(tensors)
            weighted = {t: self.lambdas[t] * losses[t] for t in self.terms}
            weighted.update({t: losses[t] for t in self.penalty_terms})
        out = {
            t: {n: g.numpy() for n, g in zip(self.var_names, self._gradients(tape, weighted[t], self.vars))}
            for t in self.loss_terms
        }
        del tape
        return out

    # ------------------------------------------------------------------ evaluation
    def rel_l2_error(self) -> float | None:
        if self.eval_u is None:
            return None
        u = self._predict(tf.constant(self.eval_x, self.dtype)).numpy()
        num = float(np.linalg.norm(u - self.eval_u))
        den = float(np.linalg.norm(self.eval_u))
        return num / den if den > 0 else num

    def _pde_mean_square(self, x: np.ndarray) -> float:
        terms, _ = self.problem.pde_residuals(self.model, tf.constant(x, self.dtype))
        return float(sum(tf.reduce_mean(tf.square(r)) for r in terms.values()))

    def heldout_residual(self) -> tuple[float | None, float | None]:
        """Mean square PDE residual on held-out points, and its ratio to the training points'."""
        if self.problem.params_dict().get("literal"):
            return None, None
        train = self._pde_mean_square(self.train_points["residual"])
        held = self._pde_mean_square(
            self.problem.heldout(np.random.default_rng(self.cfg.training.seed + 7919), self.cfg.divergence.heldout_points)
        )
        if not (math.isfinite(train) and math.isfinite(held)):
            return None, None
        return held, held / max(train, 1e-30)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> RunResult:
        if self.optimizer is None:
            return self._fit_lbfgs()
        cfg = self.cfg
        budget = self.steps_budget
        every = cfg.diagnostics.every
        rows = np.full((budget, len(self.step_names)), np.nan)
        norms = np.full(budget, np.nan)
        monitor = DivergenceMonitor(cfg.divergence, norms, every)
        diag_rows: dict[int, dict[str, float]] = {}
        t0 = time.perf_counter()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        batches = self._batches()
        n_main = len(self.step_names)
        stopped_by = None
        try:
            step, verdict, nan_step, first_bad = self._loop(
                budget, batches, rows, norms, monitor, diag_rows, every, n_main
            )
        except StopTraining as stop:
            step, verdict, nan_step, first_bad = stop.step, stop.verdict, None, None
            stopped_by = str(stop)
        steps_run = step + 1
        compile_seconds = self._compile_seconds
        return self._finish(
            rows[:steps_run], diag_rows, verdict, nan_step, first_bad, t0, compile_seconds, budget, stopped_by
        )

    def _loop(self, budget, batches, rows, norms, monitor, diag_rows, every, n_main):
        cfg = self.cfg
        verdict: Verdict | None = None
        nan_step = first_bad = None
        self._compile_seconds = 0.0
        wn_index = self.step_names.index("weight_norm/total")
        step = 0
        for step in range(budget):
            points = next(batches)
            if self.adaptive and step % cfg.loss.weighting.every == 0:
                self._update_lambdas(points)
            diag = self._diagnostics(step, points) if step % every == 0 else None
            ts = time.perf_counter()
            vec = self._step(points).numpy()
            if step == 0:
                self._compile_seconds = time.perf_counter() - ts
            if not np.isfinite(vec).all():
                nan_step = step
                bad = [n for n, v in zip(self.step_names + ["weight_norm/updated"], vec) if not np.isfinite(v)]
                first_bad = self._locate_nonfinite(points, bad[0])
                rows[step, :n_main] = vec[:n_main]
                verdict = verdict or Verdict("nan", step, f"first non-finite value at step {step}: {first_bad}")
                if diag is not None:
                    diag_rows[step] = diag
                break
            rows[step] = vec[:n_main]
            norms[step] = vec[wn_index]
            if diag is not None:
                if cfg.diagnostics.update_ratio:
                    diag.update({k: float(v) for k, v in self._update_ratio().items()})
                diag_rows[step] = diag
                self._notify_diagnostics(step, diag, verdict)
            if self.callbacks:
                metrics = dict(zip(self.step_names, vec.tolist()))
                for cb in self.callbacks:
                    cb.on_step(step, metrics)
            if verdict is None:
                verdict = monitor.check(step, float(vec[0]), float(norms[step]))
                if verdict is not None and cfg.divergence.stop_early:
                    break
        return step, verdict, nan_step, first_bad

    def _notify_diagnostics(self, step, diag, verdict) -> None:
        """Callbacks may raise StopTraining (e.g. a sweep pruner); record where and why."""
        for cb in self.callbacks:
            try:
                cb.on_diagnostics(step, diag)
            except StopTraining as stop:
                stop.step, stop.verdict = step, verdict
                raise

    def _diagnostics(self, step: int, points) -> dict[str, float]:
        out = {k: float(v) for k, v in self._diagnose(points).items()}
        if self.ntk is not None and self.cfg.diagnostics.ntk_trace:
            out.update(self.ntk.diagnostics(points))
        if self.cfg.diagnostics.error and self.eval_u is not None:
            err = self.rel_l2_error()
            if err is not None:
                out["error/rel_l2"] = err
        return out

    def _finish(
        self, rows, diag_rows, verdict, nan_step, first_bad, t0, compile_seconds, budget, stopped_by=None
    ) -> RunResult:
        cfg = self.cfg
        history = pd.DataFrame(rows, columns=self.step_names)
        history.index.name = "step"
        if diag_rows:
            diag = pd.DataFrame.from_dict(diag_rows, orient="index")
            history = history.join(diag, how="left")
        history.index.name = "step"
        losses = history["loss/total"].to_numpy()
        finite_losses = losses[np.isfinite(losses)]
        initial_loss = float(finite_losses[0]) if len(finite_losses) else None
        final_loss = float(finite_losses[-1]) if len(finite_losses) else None
        wn = history["weight_norm/total"].to_numpy()
        weight_norm_initial = float(wn[0]) if len(wn) and math.isfinite(wn[0]) else float("nan")
        weight_norm_final = float(tf.linalg.global_norm(self.vars).numpy())
        warnings = list(self.warnings)
        rel_err = self.rel_l2_error() if nan_step is None else None
        if rel_err is not None and not math.isfinite(rel_err):
            rel_err = None
        heldout = held_ms = None
        if verdict is None:
            held_ms, heldout = self.heldout_residual()
            outcome, reason, extra = classify_finished(
                cfg.divergence,
                initial_loss=initial_loss,
                final_loss=final_loss,
                rel_l2_error=rel_err,
                heldout_ratio=heldout,
            )
            warnings += extra
        else:
            outcome, reason = verdict.outcome, verdict.reason
            if nan_step is not None and verdict.outcome != "nan":
                reason += f"; first non-finite value at step {nan_step}: {first_bad}"
        last = history.iloc[-1]
        final_metrics = {k: float(v) for k, v in last.items() if isinstance(v, float) and math.isfinite(v)}
        if rel_err is not None:
            final_metrics["error/rel_l2"] = rel_err
        result = RunResult(
            config=cfg,
            outcome=outcome,
            reason=reason,
            nan_onset_step=nan_step,
            first_nonfinite=first_bad,
            steps_run=len(history),
            steps_budget=budget,
            wall_seconds=time.perf_counter() - t0,
            compile_seconds=compile_seconds,
            initial_loss=initial_loss,
            final_loss=final_loss,
            weight_norm_initial=weight_norm_initial,
            weight_norm_final=weight_norm_final,
            rel_l2_error=rel_err,
            heldout_ratio=heldout,
            heldout_residual=held_ms,
            stopped_by=stopped_by,
            warnings=warnings,
            history=history,
            final_metrics=final_metrics,
            divergence_step=None if verdict is None else verdict.step,
        )
        for w in warnings:
            log.warning(w)
        for cb in self.callbacks:
            cb.on_train_end(result)
        return result

    # ------------------------------------------------------------------ L-BFGS
    def _assign_flat(self, variables, theta: np.ndarray, sizes: list[int]) -> None:
        for v, p in zip(variables, np.split(theta, np.cumsum(sizes)[:-1])):
            v.assign(p.reshape(tuple(v.shape)).astype(self.dtype.as_numpy_dtype))

    def _fit_lbfgs(self) -> RunResult:
        """Full-batch SciPy L-BFGS-B over the flattened weights; one history row per iteration."""
        from scipy.optimize import minimize

        cfg = self.cfg
        oc = cfg.optimizer
        budget = cfg.training.steps or oc.lbfgs_max_iter
        self.steps_budget = budget
        points = self._tensors(self.train_points)
        shapes = [v.shape for v in self.vars]
        sizes = [int(np.prod(s)) for s in shapes]

        @tf.function(jit_compile=cfg.training.jit_compile, autograph=False)
        def value_and_grad(theta):
            parts = tf.split(theta, sizes)
            for v, p, s in zip(self.vars, parts, shapes):
                v.assign(tf.reshape(tf.cast(p, v.dtype), s))
            with tf.GradientTape() as tape:
                losses, _, _ = self._losses(points)
                total = self._total(losses)
            grads = self._gradients(tape, total, self.vars)
            flat = tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
            vec = [total] + [losses[t] for t in self.loss_terms]
            vec += [tf.linalg.global_norm(grads), tf.linalg.global_norm(self.vars)]
            return tf.stack([tf.cast(o, tf.float64) for o in vec]), tf.cast(flat, tf.float64)

        n_main = len(self.step_names)
        rows = np.full((budget, n_main), np.nan)
        norms = np.full(budget, np.nan)
        every = cfg.diagnostics.every
        monitor = DivergenceMonitor(cfg.divergence, norms, every)
        diag_rows: dict[int, dict[str, float]] = {}
        state = {"it": 0, "theta": None, "vec": None, "verdict": None, "nan": None, "bad": None, "accepted": None}
        t0 = time.perf_counter()
        ts = time.perf_counter()
        theta0 = np.concatenate([v.numpy().ravel() for v in self.vars]).astype(np.float64)
        vec0, _ = value_and_grad(tf.constant(theta0))
        compile_seconds = time.perf_counter() - ts
        state["accepted"] = theta0

        def fun(theta):
            vec, grad = value_and_grad(tf.constant(theta))
            vec, grad = vec.numpy(), grad.numpy()
            if not (np.isfinite(vec).all() and np.isfinite(grad).all()):
                step = state["it"]
                self._assign_flat(self.backup, state["accepted"], sizes)
                bad = [n for n, x in zip(self.step_names, vec) if not np.isfinite(x)] or ["grad/flat"]
                state["nan"], state["bad"] = step, self._locate_nonfinite(points, bad[0])
                state["verdict"] = Verdict("nan", step, f"first non-finite value at iteration {step}: {state['bad']}")
                raise _Stop
            state["theta"], state["vec"] = theta, vec
            return float(vec[0]), grad

        def callback(intermediate_result):
            it = state["it"]
            theta = intermediate_result.x
            if not np.array_equal(theta, state["theta"]):
                fun(theta)  # the line search's last evaluation was not the accepted point
            vec = state["vec"]
            prev = state["accepted"]
            rows[it] = vec[:n_main]
            norms[it] = vec[n_main - 1]
            if it % every == 0:
                diag = self._diagnostics(it, points)
                if cfg.diagnostics.update_ratio:
                    for name, a, b in zip(
                        self.var_names, np.split(theta, np.cumsum(sizes)[:-1]), np.split(prev, np.cumsum(sizes)[:-1])
                    ):
                        diag[f"update_ratio/{name}"] = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
                diag_rows[it] = diag
                self._notify_diagnostics(it, diag, state["verdict"])
            metrics = dict(zip(self.step_names, vec.tolist()))
            for cb in self.callbacks:
                cb.on_step(it, metrics)
            state["accepted"] = np.array(theta)
            state["it"] = it + 1
            verdict = monitor.check(it, float(vec[0]), float(norms[it]))
            if verdict is not None:
                state["verdict"] = verdict
                if cfg.divergence.stop_early:
                    raise StopIteration

        for cb in self.callbacks:
            cb.on_train_begin(self)
        stopped_by = None
        try:
            minimize(
                fun,
                theta0,
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={
                    "maxiter": budget,
                    "maxfun": 2 * budget,
                    "ftol": oc.lbfgs_ftol,
                    "gtol": 0.0,
                    "maxcor": 50,
                    "maxls": 50,
                },
            )
        except _Stop:
            pass
        except StopTraining as stop:
            stopped_by = str(stop)
        if state["nan"] is None:  # leave the model at the last accepted iterate
            self._assign_flat(self.vars, state["accepted"], sizes)
        steps_run = max(state["it"], 1)
        if state["it"] == 0:
            rows[0] = vec0.numpy()[:n_main]
        if state["nan"] is not None:
            steps_run = state["nan"] + 1
        return self._finish(
            rows[:steps_run],
            diag_rows,
            state["verdict"],
            state["nan"],
            state["bad"],
            t0,
            compile_seconds,
            budget,
            stopped_by,
        )


def train(config=None, overrides: Sequence[str] = (), callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train one run: ``config`` is a RunConfig, a preset name, a YAML path or a mapping."""
    cfg = config if isinstance(config, RunConfig) and not overrides else load_config(config or "poisson2d", overrides)
    return Trainer(cfg, callbacks).fit()
