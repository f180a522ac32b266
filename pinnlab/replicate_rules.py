"""What ``training.replicates > 1`` needs of the rest of a config, checked at validation time.

TensorFlow-free (imported by :mod:`pinnlab.config`'s validator), so an unsupported combination is one
line at once instead of an error after the 7-30 s TensorFlow import.  Each rule names the field, the
value and what is allowed, and why it is not supported:

* ``optimizer.name: lbfgs``: SciPy's L-BFGS-B runs one line search over one flattened weight
  vector; k replicates would share its step lengths and its stopping test, so they would not be k
  separate runs.  Stacking k SciPy optimisers in one process is k separate runs anyway.
* ``loss.weighting.scheme: grad_norm``: its λ update reduces gradients over all weights into one
  scalar per term; per-replicate λ vectors are not built (run the seeds as separate runs).
* a problem whose residual reduces over the points (``Problem.rowwise()`` false, e.g. seed with
  ``literal: true``, which keeps only the batch's first sample): stacked replicates share one row
  axis, so such a residual would mix replicates.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_replicates"]


def check_replicates(cfg: Any) -> None:
    """Raise ValueError (turned into a one-line ConfigError by pydantic's wrapper) when unsupported."""
    k = cfg.training.replicates
    if cfg.optimizer.name == "lbfgs":
        raise ValueError(
            f"training.replicates: {k} is not allowed with optimizer.name 'lbfgs' (one SciPy line search "
            "cannot be shared by independent replicates); use replicates: 1 or a first-order optimizer"
        )
    if cfg.loss.weighting.scheme != "fixed":
        raise ValueError(
            f"training.replicates: {k} is not allowed with loss.weighting.scheme {cfg.loss.weighting.scheme!r} "
            "(per-replicate loss weights are not built); use replicates: 1 or scheme 'fixed'"
        )
    from pinnlab.problems import resolve_problem

    problem = resolve_problem(cfg.problem.name, cfg.problem.params)
    if not problem.rowwise():
        raise ValueError(
            f"training.replicates: {k} is not allowed with problem {cfg.problem.name!r} and these params: "
            "its residual reduces over the points, so stacked replicates would mix; use replicates: 1"
        )
