"""Sharpness: the top Hessian eigenvalue in the weights, against the optimizer's stability threshold.

Why: gradient descent with step η is unstable along a direction whose curvature exceeds 2/η
(Cohen et al. 2021, "edge of stability"); with heavy-ball momentum β the threshold is (2 + 2β)/η;
for Adam the relevant curvature is that of the preconditioned Hessian P⁻¹H with
P = diag(√v̂) + ε, against (2 + 2β1)/((1 − β1)·η) = 38/η at β1 = 0.9 (Cohen et al. 2022).

What is measured (``sharpness/top`` and ``sharpness/ratio`` = top / threshold, so a ratio above 1
means the step is past the threshold):

=========  ==========================================  =====================================
optimizer  operator                                    threshold
=========  ==========================================  =====================================
sgd        H                                           (2 + 2β)/η (β = optimizer.momentum)
adam(w)    P^-1/2 H P^-1/2 (same spectrum as P⁻¹H)      (2 + 2β1)/((1 − β1)·η)
rmsprop    P^-1/2 H P^-1/2, P = diag(√v) + ε            2/η (Keras' RMSprop has no momentum here)
lbfgs,     H                                           none (a line search picks the step):
newton_cg
                                                       ``sharpness/ratio`` is not recorded
=========  ==========================================  =====================================

η is the optimizer's current learning rate (a schedule's value at this step).  Adam's v̂ is read
from the optimizer's state; before its first update v = 0 and the preconditioner is undefined, so
a check before the first update (step 0) reports ``sharpness/top`` of H itself and no ratio.

How: the Lanczos iteration (with full reorthogonalisation) on Hessian-vector products, each one
nested GradientTapes (``g = inner.gradient(L, w)``, then ``outer.gradient(g, w, output_gradients=v)``
= H v), which differentiates through the input derivatives of the residual again: one HVP costs
≈ 2 training steps on the seed problem (in a check run eagerly, the products share one recorded
forward pass and gradient, and each costs one backward pass through the gradient).  k HVPs span
the Krylov space {v, Av, …, A^(k-1)v}; the estimate is the largest Ritz value of A on that space
(the top of the spectrum, which is what the stability threshold bounds: a loss that curves down
harder than up, as an unbounded-below one does, still has its largest positive curvature measured;
a top below 0 counts as ratio 0), and its Ritz vector is kept.  The power
iterate A^(k-1)v lies in the same space, so the extreme Ritz values bracket its Rayleigh quotient
(power iteration's estimate after the same HVPs), and the estimate is usually far closer: on the presets and three README-sweep
seed variants at initialisation (3 random starts each, ``benchmarks/studies/sharpness_accuracy.py``), 12
power iterations reached between −1.24 (the wrong sign) and 1.00 of the top eigenvalue, 8 Lanczos
steps 0.97-1.00, and the default first check (next paragraph) gave the ratio to within 0.034 ×
max(ratio, 1) with 3-9 HVPs (3.9 on average).

The first check starts from a random vector and runs at most ``diagnostics.sharpness_cold_iters``
(12) HVPs, stopping from the ``diagnostics.sharpness_iters``-th (3) on once the residual
‖Ay − θy‖ of the Ritz pair is at most ``diagnostics.sharpness_tol`` (0.05) × max(|θ|, the stability
threshold): an eigenvalue of A then lies that close to θ, so the ratio is known within 5 % of itself,
or within 0.05 while it is below 1 (a loss curving down hard, whose top is small, would otherwise
spend every cold HVP on a precision the ratio does not need).  Later checks start from the last Ritz
vector and run ``diagnostics.sharpness_iters`` HVPs, no fewer: the top eigenvector moves slowly
between checks, and a fixed number of steps lets a rising eigenvalue in a new direction grow into
the estimate (a converged residual alone would keep tracking the old one).  The HVP uses the
step's own points (a mini-batch when the run uses them: the curvature the update sees), at most
``diagnostics.sharpness_points`` (512) of each set, the same random rows at every check: the cost of
an HVP grows with the points, and the Hessian of the mean loss over a random subset estimates the
full one.

Also here, for Adam-type optimizers: ``adam/g2_over_v`` = Σg² / Σv̂ (Bai et al. 2025: Adam's loss
spikes follow g² falling far below v, so that a returning gradient meets a tiny denominator).
It is recorded as evidence; the forecast does not alarm on it alone (docs/verdicts.md).  Alternatives measured and not used:
docs/design.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pinnlab.training.compiled import Compiled

if TYPE_CHECKING:
    from pinnlab.training.trainer import Trainer

__all__ = [
    "Lanczos",
    "Sharpness",
    "threshold",
    "hessian_vector_product",
    "hessian_vector_products",
    "lanczos_top",
]


def threshold(opt_cfg, learning_rate: float) -> float | None:
    """The stability threshold of ``optimizer.*`` at step ``learning_rate``; None for L-BFGS."""
    name = opt_cfg.name
    if name == "sgd":
        return (2.0 + 2.0 * opt_cfg.momentum) / learning_rate
    if name in ("adam", "adamw"):
        beta1 = 0.9  # Keras' default, which pinnlab's optimizers use
        return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * learning_rate)
    if name == "rmsprop":
        return 2.0 / learning_rate
    if name in ("lbfgs", "newton_cg"):
        return None
    raise ValueError(
        f"optimizer.name: {name!r} has no stability threshold (known: sgd, adam, adamw, rmsprop, lbfgs, newton_cg)"
    )


def hessian_vector_products(loss_fn, variables):
    """(g, hvp): the gradient of ``loss_fn()`` in ``variables``, and ``hvp(vectors)`` = H·``vectors``.

    One recorded forward pass and gradient (a persistent outer tape) serve every product: each
    ``hvp`` call is one backward pass through the gradient, ``outer.gradient(g, w, output_gradients=v)``
    = Σ v·∂g/∂w = H v (H is symmetric).  Run eagerly, this is what makes a check of several HVPs
    cheap: re-running the forward pass with its input derivatives and the first backward pass for
    every product cost 2-3x as much on the README sweep's networks, with bitwise the same products.
    """
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = loss_fn()
        grads = inner.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    def hvp(vectors):
        hv = outer.gradient(grads, variables, output_gradients=[tf.cast(u, g.dtype) for g, u in zip(grads, vectors)])
        return [tf.zeros_like(v) if h is None else h for h, v in zip(hv, variables)]

    return grads, hvp


def hessian_vector_product(loss_fn, variables, vectors):
    """(g, Hv): the gradient of ``loss_fn()`` in ``variables`` and its Hessian times ``vectors``."""
    grads, hvp = hessian_vector_products(loss_fn, variables)
    return grads, hvp(vectors)


class Lanczos:
    """One Lanczos iteration, fed one product at a time: ``q`` is the next vector to multiply,
    :meth:`feed` takes A·q.  Several of them advance in lockstep on one block-diagonal operator
    (the stacked replicates' Hessian), each stopping by its own test (:func:`lanczos_top`'s)."""

    def __init__(self, start: np.ndarray, iters: int, *, min_iters: int = 1, tol: float = 0.0, floor: float = 0.0):
        q = np.asarray(start, np.float64)
        self.q = q / np.linalg.norm(q)
        self.iters, self.min_iters, self.tol, self.floor = iters, min_iters, tol, floor
        self.basis: list[np.ndarray] = []
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.theta, self.y, self.residual = float("nan"), self.q, float("inf")
        self.steps = 0
        self.done = iters < 1

    def feed(self, w: np.ndarray) -> None:
        """Take A·q; sets ``done`` when a stopping test holds or the steps are used up."""
        self.steps = step = self.steps + 1
        w = np.asarray(w, np.float64)
        q = self.q
        if not np.all(np.isfinite(w)):
            self.theta, self.y, self.residual, self.done = float("nan"), q, float("inf"), True
            return
        self.basis.append(q)
        alphas, betas = self.alphas, self.betas
        alphas.append(float(q @ w))
        Q = np.stack(self.basis)
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        beta = float(np.linalg.norm(w))
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        values, vectors = np.linalg.eigh(T)
        i = int(np.argmax(values))
        self.theta = theta = float(values[i])
        y = Q.T @ vectors[:, i]
        self.y = y / np.linalg.norm(y)
        self.residual = beta * abs(float(vectors[-1, i]))
        scale = max(abs(a) for a in alphas + betas + [beta]) or 1.0
        if beta <= 1e-12 * scale:  # invariant subspace: θ is an eigenvalue of A
            self.residual, self.done = 0.0, True
            return
        if (step >= self.min_iters and self.residual <= self.tol * max(abs(theta), self.floor)) or step >= self.iters:
            self.done = True
            return
        betas.append(beta)
        self.q = w / beta

    def result(self):
        return self.theta, self.y, self.steps, self.residual


def lanczos_top(apply, start: np.ndarray, iters: int, *, min_iters: int = 1, tol: float = 0.0, floor: float = 0.0):
    """The largest Ritz value of a symmetric operator (the top of its spectrum) and its vector after at
    most ``iters`` Lanczos steps.

    ``apply(v)`` returns A·v for a float64 vector ``v``; ``start`` is the first Krylov vector.  The
    iteration stops after ``min_iters`` steps or more once the residual ‖Ay − θy‖ = β·|y_last| is at
    most ``tol``·max(|θ|, ``floor``) (``floor``: a scale below which θ need not be known finer, such as
    the stability threshold), when the Krylov space is exhausted (β ≈ 0: the bound is then 0), or when A·v is
    not finite.  Returns ``(theta, y, steps, residual)``: ``y`` unit-norm; theta NaN (and ``y`` the
    last basis vector) when a product was not finite.  Full reorthogonalisation (classical
    Gram-Schmidt, twice) keeps the basis orthogonal in float arithmetic; it holds ``iters`` vectors
    of the operator's size.
    """
    lz = Lanczos(start, iters, min_iters=min_iters, tol=tol, floor=floor)
    while not lz.done:
        lz.feed(apply(lz.q))
    return lz.result()


class Sharpness:
    """Lanczos on Hessian-vector products for one trainer; ``__call__(points)`` returns the metrics.

    A short run's checks run eagerly (up to ``diagnostics.eager_checks`` over the trainer's life,
    :meth:`plan`): one recorded forward pass and gradient, then one backward pass per HVP
    (:func:`hessian_vector_products`).  Other checks make one compiled call per HVP (the
    preconditioning and the HVP in one graph); unrolling all iterations of a check into one graph
    made the trace grow with their number (minutes for the 200 iterations of the dense-Hessian
    test).  The Lanczos bookkeeping (a few vectors of the weights' size) runs in NumPy.
    """

    def __init__(self, trainer: Trainer):
        self.trainer = t = trainer
        # one Lanczos per replicate, on its slice of the weights (the stacked Hessian is block-diagonal)
        self._shapes = [t.axis.replica_shape(w.shape) for w in t.vars]
        self._splits = np.cumsum([int(np.prod(s)) for s in self._shapes])[:-1]
        self._rows: dict[tuple[str, int], tf.Tensor] = {}
        self.last_hvps = 0  # Hessian-vector products of the last check
        self.reset()
        # never XLA: the second derivative through the residual's input derivatives meets
        # XlaDynamicUpdateSlice, which has no registered gradient (LookupError on poisson2d's preset)
        # counts checks, not HVPs: a run whose checks fit in what is left of diagnostics.eager_checks (over the
        # trainer's life: a reused trainer goes on counting) runs them eagerly, a longer one
        # compiled; an eager check of 3-12 HVPs on one recorded gradient costs 0.04-0.06 s on the
        # seed networks, the HVP's trace 0.14-0.3 s (poisson2d: 0.32 and 0.98 s;
        # benchmarks/speed/eager_costs.py; pinnlab.training.compiled's rule)
        self.compiled_hvp = Compiled(
            self._product, eager_calls=t.cfg.diagnostics.eager_checks, jit_compile=False, autograph=False
        )

    def plan(self, checks: int) -> None:
        """A run starts that makes at most ``checks`` checks (:meth:`Compiled.plan`)."""
        self.compiled_hvp.plan(checks)

    def reset(self) -> None:
        """Start over for the trainer's (new) config: a cold first check and a fresh point subset
        (a reused trainer, :mod:`pinnlab.training.reuse`, must measure what a fresh one would).
        Replicate r draws its start and subset from ``default_rng(seed + r + 104729)``, as a separate run."""
        t = self.trainer
        self.vectors: list[np.ndarray | None] = [None] * t.k
        self.rngs = [np.random.default_rng(s + 104729) for s in t.seeds]
        self._rows.clear()

    def _products(self, points, precond):
        """``apply(vectors)`` -> (A·v, Σ g² per replicate) for A = D H D, D = ``precond`` (P^-1/2);
        (H·v, None) when ``precond`` is None (no preconditioner: SGD, L-BFGS, Adam before its first
        update).  Every call reuses one recorded forward pass and gradient (:func:`hessian_vector_products`)."""
        t = self.trainer
        grads, hvp = hessian_vector_products(lambda: t.axis.total(t._total(t._losses(points)[0])), t.vars)
        if precond is None:
            return lambda vectors: (hvp(vectors), None)
        g2 = t.axis.sum_squares(grads)
        return lambda vectors: ([d * h for d, h in zip(precond, hvp([d * x for d, x in zip(precond, vectors)]))], g2)

    def _product(self, points, vectors, precond):
        """One product of :meth:`_products` (the body of the compiled HVP)."""
        return self._products(points, precond)(vectors)

    def _preconditioner(self) -> tuple[list[tf.Tensor] | None, np.ndarray | None]:
        """(D = P^-1/2 per variable, Σ v̂ per replicate) for Adam-type / RMSprop optimizers after
        their first update; (None, None) for SGD, L-BFGS and before the first update."""
        t = self.trainer
        opt = t.optimizer
        name = t.cfg.optimizer.name
        if opt is None or name not in ("adam", "adamw", "rmsprop"):
            return None, None
        it = int(opt.iterations.numpy())
        velocities = getattr(opt, "_velocities", None)
        if it == 0 or velocities is None:
            return None, None
        eps = float(opt.epsilon)
        correction = 1.0 - float(opt.beta_2) ** it if name != "rmsprop" else 1.0
        vhat = [tf.convert_to_tensor(v) / correction for v in velocities]
        vsum = sum(tf.reduce_sum(tf.reshape(v, (t.k, -1)), axis=1).numpy().astype(np.float64) for v in vhat)
        return [tf.math.rsqrt(tf.sqrt(v) + eps) for v in vhat], vsum

    def subset(self, points) -> dict:
        """At most ``diagnostics.sharpness_points`` rows of each replicate's point sets, always the same rows."""
        t = self.trainer
        n, k = t.cfg.diagnostics.sharpness_points, t.k
        out = {}
        for key, x in points.items():
            rows = int(x.shape[0]) // k
            if rows <= n:
                out[key] = x
                continue
            if (key, rows) not in self._rows:
                picks = [np.sort(rng.choice(rows, n, replace=False)) for rng in self.rngs]
                self._rows[(key, rows)] = tf.constant((np.stack(picks, axis=1) * k + np.arange(k)).ravel())
            out[key] = tf.gather(x, self._rows[(key, rows)])
        return out

    def operator(self, points) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
        """``(apply, n)``: the check's own Hessian-vector product as a map of flat float64 vectors of
        length n (all of the weights, in the check's order), on the check's subset of ``points``,
        compiled, without a preconditioner: what a study of the eigen-solver itself needs."""
        t = self.trainer
        sub = self.subset(points)
        shapes = [w.shape for w in t.vars]
        splits = np.cumsum([int(np.prod(x)) for x in shapes])[:-1]

        def apply(v: np.ndarray) -> np.ndarray:
            vs = [tf.constant(a.reshape(x), w.dtype) for a, x, w in zip(np.split(v, splits), shapes, t.vars)]
            return np.concatenate([h.numpy().ravel() for h in self.compiled_hvp.function(sub, vs, None)[0]]).astype(
                np.float64
            )

        return apply, int(sum(int(np.prod(x)) for x in shapes))

    def __call__(self, points) -> list[dict[str, float]]:
        """The metrics of a check on ``points``, one dict per replicate; ``last_hvps`` counts its products."""
        t = self.trainer
        diag = t.cfg.diagnostics
        axis = t.axis
        points = self.subset(points)
        precond, vsum = self._preconditioner()
        opt = t.optimizer
        name = t.cfg.optimizer.name
        thresholds = [None] * t.k
        if opt is not None and (vsum is not None or name == "sgd"):
            lr = float(tf.convert_to_tensor(opt.learning_rate).numpy())
            scale = [1.0] * t.k if t.lr_scale is None else [float(x) for x in t.lr_scale]
            # 0 for an infinite learning rate (float32 overflow)
            thresholds = [threshold(c.optimizer, lr * f) for c, f in zip(t.replica_cfgs, scale)]
        lanczos = []
        for r, rng in enumerate(self.rngs):
            cold = self.vectors[r] is None
            start = np.concatenate([rng.standard_normal(s).ravel() for s in self._shapes]) if cold else self.vectors[r]
            lanczos.append(
                Lanczos(
                    start,
                    diag.sharpness_cold_iters if cold else diag.sharpness_iters,
                    min_iters=min(diag.sharpness_iters, diag.sharpness_cold_iters),
                    tol=diag.sharpness_tol if cold else 0.0,
                    # the ratio is what is read: known to tol of itself, or of 1 below the threshold
                    floor=thresholds[r] or 0.0,
                )
            )
        g2 = []
        if self.compiled_hvp.count_call():
            product = self._products(points, precond)
        else:
            product = lambda vectors: self.compiled_hvp.function(points, vectors, precond)  # noqa: E731

        def apply(qs: list[np.ndarray]) -> list[np.ndarray]:
            parts = [np.split(q, self._splits) for q in qs]
            vectors = [
                tf.constant(axis.stack([p[i].reshape(s) for p in parts]), w.dtype)
                for i, (s, w) in enumerate(zip(self._shapes, t.vars))
            ]
            av, g = product(vectors)
            g2.append(g)
            av = [x.numpy() for x in av]
            return [np.concatenate([axis.replica(x, r).ravel() for x in av]).astype(np.float64) for r in range(t.k)]

        while not all(lz.done for lz in lanczos):
            for lz, w in zip(lanczos, apply([lz.q for lz in lanczos])):
                if not lz.done:
                    lz.feed(w)
        self.last_hvps = len(g2)
        g2_first = None if not g2 or g2[0] is None else axis.values(g2[0])
        rows = []
        for r, lz in enumerate(lanczos):
            top, vector, _, _ = lz.result()
            # a non-finite product: start cold at the next check
            self.vectors[r] = vector if math.isfinite(top) and np.all(np.isfinite(vector)) else None
            out = {"sharpness/top": top}
            thr = thresholds[r]
            if thr is not None and math.isfinite(top):
                out["sharpness/ratio"] = max(top, 0.0) / thr if thr > 0 else float("inf")
            if vsum is not None and vsum[r]:
                out["adam/g2_over_v"] = float(g2_first[r]) / float(vsum[r])
            rows.append(out)
        return rows
