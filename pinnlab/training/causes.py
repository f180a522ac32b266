"""Causes: why a run went the way it did, each with its evidence and a remedy.

Every run gets ``causes``, a list of ``{cause, evidence, remedy}`` (``RunResult.causes``, the
``causes`` field of ``pinnlab run --json``, MLflow tags ``cause.<name>``, counted per factor level
by ``pinnlab report``).  A cause is listed only when its rule holds on the run's own numbers; the
evidence quotes them.  A cause explains a failure: on a run that worked (``Outcome.worked``) the
rules that hold are *risks* instead (``RunResult.risks``, tags ``risk.<name>``, counted apart by
sweeps and reports): a sharpness past the threshold on a run that trained is a warning, not the
reason for a failure that did not happen.  TensorFlow-free: it reads the config, the history frame and the summary
numbers, so the analysis can re-derive causes from stored histories too.

=========================  =====================================================================
``unbounded_loss``         a loss term's formulation is unbounded below
                           (``names.FORMULATIONS[...].bounded_below``) and the loss fell: the
                           lowest finite loss is below the initial one and the slope over the
                           last ``trend_window`` steps is negative (the slope is the evidence)
``step_too_large``         ``sharpness/ratio`` above ``causes.step_ratio`` (1.1) at some check: the top
                           (preconditioned) Hessian eigenvalue is past the optimizer's stability
                           threshold.  At the edge of stability gradient descent hovers at exactly 1
                           (Cohen et al. 2021), hence the 10 % margin.  Evidence: the largest
                           ratio and its step; remedy: the learning rate that would put it at 1
``vanishing_derivative``   the activation's k-th derivative vanishes almost everywhere
                           (``names.ACTIVATIONS[...].vanishes_from``) and the residual uses order
                           ≥ k, or a measured ``deriv/<name>`` is ≤ ``causes.zero_derivative`` (1e-6) × the
                           largest one at every check (which ``deriv/...`` is zero)
``term_imbalance``         the median over checks of the per-term gradient norms
                           ``grad_norm/<term>`` (residual and constraint terms, not penalties)
                           differ by more than ``causes.imbalance`` (100×, the two orders of magnitude Wang
                           et al. 2021 report between PINN terms)
``bias_starvation``        median over checks of ‖∇biases‖/‖∇kernels‖ below ``causes.bias_ratio`` (0.1)
                           on a loss without a weighted term on u itself (boundary, initial or
                           anchor data): measured on the seed question 0.04–0.12 for Dense(100,
                           relu), where the biases barely train because the loss sees the weights
                           only through input derivatives
``collocation_overfit``    held-out / training PDE residual above ``causes.overfit_ratio`` (10; the
                           ``silent_failure`` rule uses divergence.max_heldout_ratio = 100)
``precision``              a NaN run whose last finite loss, gradient or weight norm was within
                           ``causes.overflow_margin`` (1e8) of float32's largest value (3.4e38): the
                           values overflowed, the NaN is the end of a divergence, not a bug
=========================  =====================================================================

Causes known before training (:func:`static_causes`: the activation against the residual's order,
an unbounded-below formulation) are printed by ``pinnlab run`` before it trains, and by a sweep
and ``pinnlab report`` per trial; they replace nothing in the run's ``warnings``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pinnlab.core.names import ACTIVATIONS
from pinnlab.problems import resolve_problem

__all__ = ["Cause", "CAUSES", "static_causes", "run_causes", "cause_tags"]

FLOAT32_MAX = 3.4028235e38

CAUSES = {
    "unbounded_loss": "a loss formulation unbounded below, driven down by growing the weights",
    "step_too_large": "the step is past the optimizer's stability threshold (sharpness ratio > 1)",
    "vanishing_derivative": "an input derivative the residual needs is zero almost everywhere",
    "term_imbalance": "one loss term's gradient dwarfs another's",
    "bias_starvation": "the biases get almost no gradient",
    "collocation_overfit": "the PDE holds on the training points but not between them",
    "precision": "values reached float32's range before the NaN",
}


@dataclass(frozen=True)
class Cause:
    cause: str
    evidence: str
    remedy: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def cause_tags(causes: list[dict], prefix: str = "cause") -> dict[str, str]:
    """MLflow tags ``cause.<name>`` (``risk.<name>`` for a run that worked) = its evidence."""
    return {f"{prefix}.{c['cause']}": c["evidence"] for c in causes}


def _problem(cfg):

    return resolve_problem(cfg.problem.name, cfg.problem.params)


def static_causes(cfg, problem=None) -> list[Cause]:
    """Causes known from the config alone (before training); ``problem``: the resolved problem when
    the caller has it.  A trainer's warnings are these causes' evidence."""
    out = []
    problem = problem or _problem(cfg)
    act = ACTIVATIONS.get(cfg.model.activation)
    order = problem.max_order
    if act.degenerate_for(order):
        out_act = ACTIVATIONS.get(cfg.model.output_activation)
        where = (
            "so those derivatives of the network are zero almost everywhere"
            if out_act.degenerate_for(2) or cfg.model.output_activation == "linear"
            else f"so they come only from the output activation {cfg.model.output_activation!r}"
        )
        out.append(
            Cause(
                "vanishing_derivative",
                f"model.activation {act.name!r}: its derivatives of order >= {act.vanishes_from} vanish almost "
                f"everywhere, but the residual of {problem.name} uses order {order} "
                f"({', '.join(problem.derivatives)}), {where}",
                "use a smooth activation (model.activation=tanh, sin or softplus)",
            )
        )
    raw = cfg.loss.unbounded_terms(problem.term_names())
    if raw:
        forms = sorted({cfg.loss.formulation_of(t) for t in raw})
        out.append(
            Cause(
                "unbounded_loss",
                f"loss.formulation {', '.join(map(repr, forms))} on {', '.join(raw)}: the mean of a residual is "
                "unbounded below; minimising it drives the residual towards -inf by growing the weights",
                _UNBOUNDED_REMEDY,
            )
        )
    return out


_UNBOUNDED_REMEDY = (
    "use a bounded formulation (loss.formulation=squared) and data that pin the solution down "
    "(e.g. problem.params.constraint=dirichlet, as the seed-fixed preset does)"
)


def _checks(history: pd.DataFrame, column: str) -> pd.Series:
    if column not in history.columns:
        return pd.Series(dtype=float)
    s = history[column]
    return s[np.isfinite(s)]


def run_causes(cfg, history: pd.DataFrame, *, terms, summary: dict, static: list[Cause] | None = None) -> list[Cause]:
    """The causes whose rule holds on this run (``summary``: the RunResult summary fields;
    ``static``: :func:`static_causes` of the config when the caller has them)."""
    out: list[Cause] = []
    losses = history["loss/total"].to_numpy(dtype=float) if "loss/total" in history else np.array([])
    finite = losses[np.isfinite(losses)]
    raw = cfg.loss.unbounded_terms(terms)
    if raw and len(finite) >= 2 and finite.min() < finite[0]:
        w = min(cfg.divergence.trend_window, max(len(finite) // 2, 2))
        tail = finite[-w:]
        s = float(np.polyfit(np.arange(len(tail)), tail, 1)[0])
        if s < 0:
            out.append(
                Cause(
                    "unbounded_loss",
                    f"{', '.join(raw)} unbounded below ({', '.join(sorted({cfg.loss.formulation_of(t) for t in raw}))}); the loss fell from {finite[0]:.3g} to "
                    f"{finite.min():.3g}, at {s:.3g} per step over the last {len(tail)} steps",
                    _UNBOUNDED_REMEDY,
                )
            )
    ratio = _checks(history, "sharpness/ratio")
    if len(ratio) and ratio.max() > cfg.causes.step_ratio:
        step = int(ratio.idxmax())
        lr = cfg.optimizer.learning_rate
        out.append(
            Cause(
                "step_too_large",
                f"sharpness/ratio {ratio.max():.3g} at step {step} (top eigenvalue "
                f"{history.loc[step, 'sharpness/top']:.3g}, optimizer.learning_rate={lr:g})",
                f"optimizer.learning_rate <= {lr / ratio.max():.3g} puts it under the stability threshold",
            )
        )
    out += _vanishing(cfg, history, static_causes(cfg) if static is None else static)
    grads = {t: _checks(history, f"grad_norm/{t}") for t in terms}
    med = {t: float(s.median()) for t, s in grads.items() if len(s)}
    if len(med) >= 2:
        hi, lo = max(med, key=med.get), min(med, key=med.get)
        if med[lo] <= 0 or med[hi] / med[lo] > cfg.causes.imbalance:
            factor = math.inf if med[lo] <= 0 else med[hi] / med[lo]
            out.append(
                Cause(
                    "term_imbalance",
                    f"median grad_norm/{hi} = {med[hi]:.3g} vs grad_norm/{lo} = {med[lo]:.3g} ({factor:.3g}x > {cfg.causes.imbalance:g}x)",
                    f"raise loss.weights.{lo} or use loss.weighting.scheme=grad_norm",
                )
            )
    bias = [c for c in history.columns if c.startswith("grad_norm/") and c.endswith("/bias")]
    kern = [c for c in history.columns if c.startswith("grad_norm/") and c.endswith("/kernel")]
    # the rule's premise: the loss sees the weights only through input derivatives; a loss with a
    # weighted term on u itself (boundary, initial, anchor data) already has what the remedy adds
    on_u = [t for t in _problem(cfg).constraint_names() if cfg.loss.weights.get(t, 1.0) > 0]
    if bias and kern and not on_u:
        b = np.sqrt((history[bias] ** 2).sum(axis=1, min_count=1))
        k = np.sqrt((history[kern] ** 2).sum(axis=1, min_count=1))
        r = (b / k)[np.isfinite(b / k)]
        if len(r) and float(r.median()) < cfg.causes.bias_ratio:
            out.append(
                Cause(
                    "bias_starvation",
                    f"median ||grad biases|| / ||grad kernels|| = {float(r.median()):.3g} < {cfg.causes.bias_ratio:g}",
                    "the loss sees the weights only through input derivatives: add terms on u itself "
                    "(boundary or anchor data, problem.params.constraint)",
                )
            )
    held = summary.get("heldout_ratio")
    if held is not None and held > cfg.causes.overfit_ratio:
        out.append(
            Cause(
                "collocation_overfit",
                f"held-out / training PDE residual = {held:.3g} > {cfg.causes.overfit_ratio:g}",
                "more residual points (problem.params.n_residual) or fresh ones each step (training.resample=true)",
            )
        )
    if summary.get("nan_onset_step") is not None:
        cols = [c for c in ("loss/total", "grad_norm/total", "weight_norm/total") if c in history]
        vals = history[cols].abs().replace([np.inf], np.nan)
        peak = float(np.nanmax(vals.to_numpy())) if vals.notna().any().any() else float("nan")
        if math.isfinite(peak) and peak >= FLOAT32_MAX / cfg.causes.overflow_margin:
            out.append(
                Cause(
                    "precision",
                    f"largest finite |loss|, gradient or weight norm {peak:.3g} before the NaN at step "
                    f"{summary['nan_onset_step']} (float32 max {FLOAT32_MAX:.3g})",
                    "the values overflowed float32: remove the divergence (see the other causes); "
                    "model.dtype=float64 only postpones it",
                )
            )
    return out


def _vanishing(cfg, history: pd.DataFrame, static: list[Cause]) -> list[Cause]:
    derivs = {c[len("deriv/") :]: _checks(history, c) for c in history.columns if c.startswith("deriv/")}
    derivs = {k: s for k, s in derivs.items() if len(s)}
    zero = []
    if derivs:
        scale = max(float(s.abs().max()) for s in derivs.values())
        zero = [
            k for k, s in derivs.items() if scale > 0 and float(s.abs().max()) <= cfg.causes.zero_derivative * scale
        ]
    static = [c for c in static if c.cause == "vanishing_derivative"]
    if not zero and not static:
        return []
    measured = ", ".join(f"deriv/{k} = {float(s.iloc[-1]):.3g}" for k, s in derivs.items())
    what = f"zero: {', '.join(f'deriv/{k}' for k in zero)}" if zero else "no deriv/... is zero here"
    head = static[0].evidence + "; " if static else ""
    return [
        Cause(
            "vanishing_derivative",
            f"{head}{what} (last checks: {measured or 'not measured'})",
            "use a smooth activation (model.activation=tanh, sin or softplus)",
        )
    ]
