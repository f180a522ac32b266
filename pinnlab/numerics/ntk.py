"""The neural tangent kernel of a PINN's loss terms: per-point gradients, traces and spectra.

For a loss term with residual ``r: (n,)`` over its points and parameters ``θ`` (``P`` numbers),
``J = ∂r/∂θ: (n, P)`` and the term's kernel block is ``K_ii = J Jᵀ: (n, n)``.  Wang, Yu &
Perdikaris (2022) weight term ``i`` by ``λ_i = tr(K) / tr(K_ii)`` with ``tr(K) = Σ_j tr(K_jj)``;
``tr(K_ii) = Σ_p ‖∂r_p/∂θ‖²`` needs only per-point gradients, never the ``n × n`` block.

How per-point gradients are computed
------------------------------------
``tf.vectorized_map`` over the term's points, with the residual (nested input-derivative tapes
inside, :mod:`pinnlab.numerics.derivatives`) and a weight tape evaluated on *one point* per map element:
measured at 1.9–2.8 ms for 200 points of the 1-D Poisson case, also under XLA.
``tape.jacobian(r, θ, experimental_use_pfor=True)`` gives the same numbers in 42–64 ms: it
vectorises over *cotangents*, so every one of the ``n`` backward passes runs over all ``n`` points
(``O(n² P)`` instead of ``O(n P)``).  Tested against a naive per-point loop in tests/numerics/test_ntk.py.

Which points belong to a term is not declared by problems, so :func:`term_layouts` finds out once,
eagerly: the point set whose input gradient is connected to the term.  A term given as a list of
``g`` parts (helmholtz2d's four edges, ``tf.split`` of its set) is evaluated on groups of ``g``
rows taken ``n/g`` apart, so that each part receives exactly one row.  Rows must be independent
(a plain MLP, as :func:`pinnlab.numerics.derivatives.partials` already assumes).

When exact is too big or impossible
-----------------------------------
Per-point gradients hold ``n × P`` floats.  Above ``max_floats`` (default 2²⁴ = 64 MB in float32)
the points are processed in chunks and the traces summed.  A term that reads more than one point
set, or whose parts are not equal chunks of its set, or ``estimator="hutchinson"``, gets the
Hutchinson estimate ``tr(J Jᵀ) = E_v ‖Jᵀ v‖²`` with Rademacher ``v``: one backward pass per probe
over the full batch, no ``n × P`` storage.  Its variance is 2(‖K‖_F² − Σ_p K_pp²): large when K
is nearly low-rank.  8 probes were 11–45 % off on poisson1d and poisson2d (docs/benchmarks.md);
the error falls as 1/√probes.

A parameter that does not reach a term (the output bias in ``u_xx``) has a ``None`` gradient;
it is counted as zeros, as everywhere in pinnlab.

Stacked replicates (``replicas = k > 1``, :mod:`pinnlab.training.replicas`): the network is k
networks and a point set holds every replicate's points interleaved (row ``i·k + r``).  A map
element is then one point of every replicate (k rows per part), and the gradient of their summed
residual has each replicate's per-point gradient in that replicate's block of the weights (the
networks share none), so the squared norm of each block is that replicate's term: every trace is
a ``(k,)`` vector, each entry the trace its replicate's separate run would compute.  Hutchinson
probes act on all rows at once and are split the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["Layout", "TermNTK", "term_layouts", "ntk_lambdas", "spectrum", "MAX_FLOATS", "PROBES"]

MAX_FLOATS = 2**24  # per-point gradients held at once: 64 MB in float32, 128 MB in float64
PROBES = 8  # Hutchinson probes: 11-45 % from the exact trace on poisson1d/2d (error ~ 1/sqrt(probes))


@dataclass(frozen=True)
class Layout:
    """Where a term's residual rows come from: point set ``set``, as ``parts`` equal chunks."""

    set: str
    parts: int


def _parts(r) -> list[tf.Tensor]:
    return r if isinstance(r, list) else [r]


def _flat_parts(r) -> tf.Tensor:
    return tf.concat([tf.reshape(p, [-1]) for p in _parts(r)], axis=0)


def term_layouts(problem, net, points: Mapping[str, tf.Tensor], terms: Sequence[str]) -> dict[str, Layout | None]:
    """Eagerly find each term's point set and part count; ``None``: only the Hutchinson estimate applies."""
    points = {k: tf.convert_to_tensor(v) for k, v in points.items()}
    with tf.GradientTape(persistent=True) as tape:
        for x in points.values():
            tape.watch(x)
        values, _ = problem.residuals(net, points)
        targets = {t: tf.add_n([tf.reduce_sum(p) for p in _parts(values[t])]) for t in terms}
    out: dict[str, Layout | None] = {}
    for term in terms:
        parts = _parts(values[term])
        target = targets[term]
        used = [k for k, x in points.items() if tape.gradient(target, x) is not None]
        sizes = {int(p.shape[0]) for p in parts}
        ok = (
            len(used) == 1
            and len(sizes) == 1
            and all(tuple(p.shape[1:]) in ((), (1,)) for p in parts)
            and sizes.pop() * len(parts) == int(points[used[0]].shape[0])
        )
        out[term] = Layout(used[0], len(parts)) if ok else None
    del tape
    return out


class TermNTK:
    """Per-term NTK traces and per-point Jacobians of ``problem``'s residuals for ``net``.

    ``points`` (one batch, numpy or tensors) fixes the layouts; later calls may pass other batches
    of the same structure (resampled, mini-batched).  :meth:`traces` and :meth:`jacobian` are
    traceable inside ``tf.function`` (with or without ``jit_compile``).
    """

    def __init__(
        self,
        problem,
        net,
        variables: Sequence[tf.Variable],
        points: Mapping[str, np.ndarray | tf.Tensor],
        terms: Sequence[str],
        *,
        estimator: str = "exact",
        probes: int = PROBES,
        max_floats: int = MAX_FLOATS,
        dtype=tf.float32,
        replicas: int = 1,
    ):
        if estimator not in ("exact", "hutchinson"):
            raise ValueError(f"`estimator` must be 'exact' or 'hutchinson', but got {estimator!r}.")
        self.problem, self.net, self.vars = problem, net, list(variables)
        self.terms = list(terms)
        self.dtype = tf.as_dtype(dtype)
        tensors = {k: tf.constant(v, self.dtype) for k, v in points.items()}
        layouts = term_layouts(problem, net, tensors, self.terms)
        self.layouts = layouts if estimator == "exact" else dict.fromkeys(self.terms)
        self.probes = probes
        self.max_floats = max_floats
        self.n_params = sum(int(np.prod(v.shape)) for v in self.vars)
        self.k = replicas
        # the smallest slice of every set that the problem accepts, fed where a set is not mapped over
        self._minimal = {
            key: replicas * max((lay.parts for lay in layouts.values() if lay and lay.set == key), default=0)
            for key in tensors
        }

    # ------------------------------------------------------------------ exact, per point
    def _small(self, points: Mapping[str, tf.Tensor], mapped: str) -> dict[str, tf.Tensor]:
        return {k: (x if not self._minimal[k] else x[: self._minimal[k]]) for k, x in points.items() if k != mapped}

    def _flat_grads(self, tape, target) -> tf.Tensor:
        grads = tape.gradient(target, self.vars)
        return tf.concat([tf.reshape(tf.zeros_like(v) if g is None else g, [-1]) for g, v in zip(grads, self.vars)], 0)

    def jacobian(self, points: Mapping[str, tf.Tensor], term: str) -> tf.Tensor:
        """``J = ∂r/∂θ: (n, P)`` of one term, rows in group order (a permutation of the points).

        Raises ValueError for a term without an exact layout.
        """
        layout = self.layouts[term]
        if layout is None:
            raise ValueError(f"term {term!r} has no per-point layout; use estimator 'hutchinson' for its trace")
        x = points[layout.set]
        g = layout.parts
        n, d = int(x.shape[0]), int(x.shape[1])
        groups = tf.transpose(tf.reshape(x, [g, n // g, d]), [1, 0, 2])  # (n/g, g, d): one row per part
        small = self._small(points, layout.set)

        def one(xg):
            with tf.GradientTape(persistent=g > 1) as tape:
                values, _ = self.problem.residuals(self.net, {**small, layout.set: xg})
                r = _flat_parts(values[term])
                outs = [r[i] for i in range(g)]  # sliced under the tape, or their gradient is None
            rows = [self._flat_grads(tape, o) for o in outs]
            del tape
            return tf.stack(rows)  # (g, P)

        chunk = max(1, self.max_floats // max(g * self.n_params, 1))
        blocks = [tf.vectorized_map(one, groups[i : i + chunk]) for i in range(0, n // g, chunk)]
        return tf.reshape(tf.concat(blocks, 0), [n, self.n_params])

    def _replica_squares(self, tape, target) -> tf.Tensor:
        """Σ (∂target/∂θ)² over each replicate's block of the stacked weights: ``(k,)``."""
        grads = tape.gradient(target, self.vars)
        k = self.k
        return tf.add_n(
            [
                tf.reduce_sum(tf.square(tf.reshape(tf.zeros_like(v) if g is None else g, (k, -1))), axis=1)
                for g, v in zip(grads, self.vars)
            ]
        )

    def _stacked_trace(self, points, term) -> tf.Tensor:
        """tr(K_ii) of every replicate, ``(k,)``: one point of every replicate per map element."""
        layout = self.layouts[term]
        k = self.k
        x = points[layout.set]
        g = layout.parts
        rows, d = int(x.shape[0]), int(x.shape[1])
        per = rows // (g * k)  # points per part and replicate
        # (g parts, per points, k replicates, d) -> one element per point: its g parts' k rows each
        elements = tf.reshape(tf.transpose(tf.reshape(x, [g, per, k, d]), [1, 0, 2, 3]), [per, g * k, d])
        small = self._small(points, layout.set)

        def one(xg):
            with tf.GradientTape(persistent=g > 1) as tape:
                values, _ = self.problem.residuals(self.net, {**small, layout.set: xg})
                r = _flat_parts(values[term])
                outs = [tf.reduce_sum(r[i * k : (i + 1) * k]) for i in range(g)]  # part i, every replicate
            sq = tf.add_n([self._replica_squares(tape, o) for o in outs])
            del tape
            return sq  # (k,)

        chunk = max(1, self.max_floats // max(g * self.n_params, 1))
        return tf.add_n(
            [tf.reduce_sum(tf.vectorized_map(one, elements[i : i + chunk]), axis=0) for i in range(0, per, chunk)]
        )

    def _exact_trace(self, points, term) -> tf.Tensor:
        if self.k > 1:
            return self._stacked_trace(points, term)
        layout = self.layouts[term]
        x = points[layout.set]
        g = layout.parts
        n = int(x.shape[0])
        chunk_rows = max(g, (self.max_floats // max(self.n_params, 1)) // g * g)
        if chunk_rows >= n:
            return tf.reduce_sum(tf.square(self.jacobian(points, term)))
        # chunks of whole groups: slice the (n/g, g, d) view and map each slice back to row order
        per = n // g
        view = tf.reshape(x, [g, per, -1])
        step = chunk_rows // g
        total = tf.constant(0.0, self.dtype)
        for i in range(0, per, step):
            part = tf.reshape(view[:, i : i + step], [-1, view.shape[-1]])
            total += tf.reduce_sum(tf.square(self.jacobian({**points, layout.set: part}, term)))
        return total

    # ------------------------------------------------------------------ Hutchinson
    def _hutchinson(self, points, terms: Sequence[str], seed: tf.Tensor) -> dict[str, tf.Tensor]:
        projections = {}
        with tf.GradientTape(persistent=True) as tape:
            values, _ = self.problem.residuals(self.net, dict(points))
            for j, t in enumerate(terms):
                flat = _flat_parts(values[t])
                shape = [self.probes, int(flat.shape[0])]
                u = tf.random.stateless_uniform(shape, seed + tf.constant([0, 7919 * (j + 1)], seed.dtype))
                v = tf.cast(tf.where(u < 0.5, -1.0, 1.0), self.dtype)  # Rademacher probes
                projections[t] = [tf.reduce_sum(v[i] * flat) for i in range(self.probes)]  # v·r under the tape
        out = {}
        for t in terms:
            if self.k > 1:  # each replicate's block of Jᵀv is its own projection
                sq = [self._replica_squares(tape, p) for p in projections[t]]
            else:
                sq = [tf.reduce_sum(tf.square(self._flat_grads(tape, p))) for p in projections[t]]
            out[t] = tf.add_n(sq) / self.probes
        del tape
        return out

    # ------------------------------------------------------------------ public
    def traces(self, points: Mapping[str, tf.Tensor], seed: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """``{term: tr(K_ii)}`` (sums over the term's points); ``seed: (2,) int32`` for Hutchinson probes."""
        out = {t: self._exact_trace(points, t) for t in self.terms if self.layouts[t] is not None}
        rest = [t for t in self.terms if self.layouts[t] is None]
        if rest:
            seed = tf.constant([0, 0], tf.int32) if seed is None else seed
            out.update(self._hutchinson(points, rest, seed))
        return {t: out[t] for t in self.terms}

    def counts(self, points: Mapping[str, tf.Tensor]) -> dict[str, int]:
        """Residual entries per term (and replicate) on this batch (static): the denominators of mean traces."""
        out = {}
        for t in self.terms:
            lay = self.layouts[t]
            if lay is not None:
                out[t] = int(points[lay.set].shape[0]) // self.k
            else:
                values, _ = self.problem.residuals(self.net, dict(points))
                out[t] = int(_flat_parts(values[t]).shape[0]) // self.k
        return out


def ntk_lambdas(traces: Mapping[str, tf.Tensor], counts: Mapping[str, int]) -> dict[str, tf.Tensor]:
    """λ_i = Σ_j m_j / m_i with mean traces m_i = tr(K_ii) / n_i.

    Mean traces, not sums: a term's loss is a *mean* over its points, so its gradient flow scales
    with the mean of K_ii, and a term sampled with 10× more points must not get a 10× smaller λ.
    With equal point counts (the published 1-D Poisson case) this is the published tr(K)/tr(K_ii).
    """
    means = {t: traces[t] / counts[t] for t in traces}
    total = tf.add_n(list(means.values()))
    tiny = tf.constant(1e-30, total.dtype)
    return {t: total / tf.maximum(m, tiny) for t, m in means.items()}


def spectrum(jac: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``K = J Jᵀ`` in decreasing order (float64), from ``J: (n, P)``."""
    j = np.asarray(jac, np.float64)
    return np.linalg.eigvalsh(j @ j.T)[::-1].clip(min=0.0)
