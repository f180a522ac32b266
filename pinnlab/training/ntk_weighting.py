"""NTK loss weighting and the ``ntk_trace/<term>`` diagnostic, attached to a :class:`Trainer`.

``loss.weighting.scheme: ntk`` (Wang, Yu & Perdikaris 2022): every ``loss.weighting.every`` steps
(default 100, the authors' interval) λ̂_i = Σ_j m_j / m_i from the mean traces
m_i = tr(K_ii) / n_i of every loss term (penalties excluded), and λ_i ← α λ_i + (1 − α) λ̂_i with
``loss.weighting.alpha`` (default 0 for ntk: the authors set λ outright; grad_norm keeps its 0.9).
The math lives in :mod:`pinnlab.numerics.ntk`; this module only compiles it against the trainer's state.

λ lives in the trainer's ``tf.Variable``\\ s and is changed with ``assign`` inside one compiled
function whose only inputs are the point tensors and a ``(2,)`` seed tensor (for Hutchinson
probes), so updates never retrace (tests/numerics/test_ntk.py counts the traces).

``diagnostics.ntk_trace`` logs ``ntk_trace/<term>`` = tr(K_ii) (the sum over the term's points,
as in the paper's figures) every diagnostics step, whatever the scheme, from a second compiled
function; it always uses the exact per-point route where the term allows it.  Without it, a run
weighted by ``ntk`` logs the traces its λ update computed (the weighting's estimator) on the
diagnostics steps that are also update steps: no extra cost, and no trace older than its step.
"""

from __future__ import annotations

import tensorflow as tf

from pinnlab.numerics.ntk import TermNTK, ntk_lambdas

__all__ = ["NTKWeighting"]


class NTKWeighting:
    """Compiled NTK trace and λ update for ``trainer`` (built at the end of ``Trainer.__init__``)."""

    def __init__(self, trainer):
        cfg = trainer.cfg
        w = cfg.loss.weighting
        self.trainer = trainer
        self.alpha = w.alpha
        self.seed = cfg.training.seed
        self.calls = 0
        self.latest: dict[str, tf.Tensor] = {}  # the traces of the latest λ update
        points = trainer.train_points
        args = (trainer.problem, trainer.model, trainer.vars, points, trainer.terms)
        k = trainer.k  # stacked replicates: every trace and λ per replicate (pinnlab.numerics.ntk)
        self.weighting = TermNTK(*args, estimator=w.ntk_estimator, probes=w.ntk_probes, dtype=trainer.dtype, replicas=k)
        self.exact = TermNTK(*args, dtype=trainer.dtype, replicas=k) if w.ntk_estimator != "exact" else self.weighting
        compiled = dict(jit_compile=cfg.training.jit_compile, autograph=False)
        self._update = tf.function(self._update_impl, **compiled)
        self._trace = tf.function(self._trace_impl, **compiled)

    def _update_impl(self, points, seed):
        tr = self.weighting.traces(points, seed)
        hats = ntk_lambdas(tr, self.weighting.counts(points))
        lam = self.trainer.lambdas
        for t, hat in hats.items():
            lam[t].assign(self.alpha * lam[t] + (1 - self.alpha) * tf.cast(hat, lam[t].dtype))
        return tf.stack([lam[t] for t in self.trainer.terms]), tr

    def _trace_impl(self, points, seed):
        return {f"ntk_trace/{t}": v for t, v in self.exact.traces(points, seed).items()}

    def _seed(self) -> tf.Tensor:
        self.calls += 1
        return tf.constant([self.seed, self.calls], tf.int32)

    def update(self, points) -> tf.Tensor:
        """Update every term's λ from this batch; returns them stacked in ``trainer.terms`` order."""
        lambdas, self.latest = self._update(points, self._seed())
        return lambdas

    def diagnostics(self, points, step: int) -> list[dict[str, float]]:
        """``ntk_trace/<term>`` per replicate: exact, with ``diagnostics.ntk_trace``; else, for the ntk scheme, the
        latest update's traces when ``step`` is an update step; else nothing."""
        t = self.trainer
        cfg = t.cfg
        if cfg.diagnostics.ntk_trace:
            return t.axis.rows(self._trace(points, self._seed()))
        if cfg.loss.weighting.scheme == "ntk" and step % cfg.loss.weighting.every == 0:
            return t.axis.rows({f"ntk_trace/{term}": v for term, v in self.latest.items()})
        return [{} for _ in range(t.k)]
