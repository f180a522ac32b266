"""``helmholtz``: gradient pathologies and learning-rate annealing (Wang, Teng & Perdikaris 2021).

Setup (preset ``helmholtz2d``, the authors' reference code's conventions): Δu + u = f on [−1, 1]²
with exact u = sin(πx) sin(4πy) (a1 = 1, a2 = 4); [2, 50, 50, 50, 1] tanh, Xavier (Glorot normal)
initialisation, inputs standardised; Adam 1e-3 decayed ×0.9 every 1000 steps; 128 fresh points per
boundary edge and 128 for the residual every step; the boundary loss is the *sum* of the four
edges' mean squares; 40,001 steps.

* **plain**: loss = L_r + L_bc;
* **annealing** (``loss.weighting.scheme: grad_norm``): every 10 steps
  λ̂ = max|∇_W L_r| / mean over layers of mean|∇_W (λ·L_bc)| and λ ← 0.9 λ + 0.1 λ̂ (kernels only),
  loss = L_r + λ·L_bc.  This is the reference code's form; the paper's equation divides by
  mean|∇_W L_bc| without λ, whose fixed point differs (see :mod:`pinnlab.numerics.losses`).

The paper's four models: M1 plain, M2 annealing, M3 the improved (modified) MLP
(``model.architecture: modified_mlp``), M4 the modified MLP with annealing; the 50–100× of the
paper's abstract is M4 against M1.  Two differences from the reference code's M3/M4: the encoders'
biases start at zero (theirs: Xavier-initialised), and annealing's λ̂ reads every kernel, the
encoders' too (theirs: the gated layers' only).

Gradient pathology: for each kernel, the distribution of ∂L_r/∂W against ∂(λ·L_bc)/∂W on the
training points drawn at step 0, at initialisation and at the end of each training.  The summary
figure per layer is mean|∂L_r/∂W| / mean|∂(λ·L_bc)/∂W|.  λ is "bounded" when it is finite and its
maximum over the last quarter of training is at most twice its maximum before.

``--quick``: one seed, 2,000 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pinnlab.reproduce.base import Session, fmt, span

TITLE = "helmholtz: gradient pathologies in PINNs and learning-rate annealing"
SOURCE = (
    "S. Wang, Y. Teng, P. Perdikaris, 'Understanding and mitigating gradient pathologies in physics-informed "
    "neural networks', SIAM J. Sci. Comput. 43(5), 2021"
)
W21 = "Wang et al. 2021"
ANNEALING = {"loss.weighting.scheme": "grad_norm"}
MODIFIED = {"model.architecture": "modified_mlp"}
METHODS = {  # the paper's M1-M4
    "plain": {},
    "annealing": ANNEALING,
    "modified": MODIFIED,
    "modified+annealing": {**MODIFIED, **ANNEALING},
}
MODELS = dict(zip(METHODS, ("M1", "M2", "M3", "M4")))


def _budget(session: Session) -> dict[str, Any]:
    if session.quick:
        return {"seeds": [0], "steps": 2000, "every": 100}
    return {"seeds": [0, 1], "steps": 40001, "every": 500}


def _kernel_gradients(trainer, points) -> dict[str, dict[str, np.ndarray]]:
    grads = trainer.term_gradients(points)
    return {
        term: {name: g.ravel() for name, g in per_var.items() if name.endswith("kernel")}
        for term, per_var in grads.items()
    }


def _ratios(grads: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """Per kernel: mean|∂L_r/∂W| / mean|∂(λ·L_bc)/∂W|."""
    return {
        name: float(np.mean(np.abs(grads["residual"][name])) / max(np.mean(np.abs(grads["boundary"][name])), 1e-30))
        for name in grads["residual"]
    }


def _bounded(lam: np.ndarray) -> bool:
    lam = lam[~np.isnan(lam)]
    if len(lam) < 4 or not np.isfinite(lam).all():
        return False
    q = len(lam) * 3 // 4
    return bool(lam[q:].max() <= 2 * lam[:q].max())


def run(session: Session) -> None:
    b = _budget(session)
    rows: list[dict[str, Any]] = []
    histograms: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    curves: dict[str, Any] = {}
    for seed in b["seeds"]:
        for method, extra in METHODS.items():
            cfg = session.config(
                "helmholtz2d",
                {"training.steps": b["steps"], "training.seed": seed, "diagnostics.every": b["every"], **extra},
            )
            initial: dict[str, Any] = {}

            def at_start(trainer, initial=initial):
                initial["points"] = trainer.train_points  # the step-0 sample: both ends on the same points
                initial["grads"] = _kernel_gradients(trainer, trainer.train_points)

            result, trainer = session.train(cfg, method, part=method, before=at_start)
            g0 = initial["grads"]
            g1 = _kernel_gradients(trainer, initial["points"])
            lam = result.history["lambda/boundary"].to_numpy() if "lambda/boundary" in result.history else None
            rows.append(
                {
                    "seed": seed,
                    "method": method,
                    "model": MODELS[method],
                    "error": result.rel_l2_error,
                    "outcome": result.outcome,
                    "steps": result.steps_run,
                    "wall_seconds": result.wall_seconds,
                    "ms_per_step": 1000 * result.wall_seconds / max(result.steps_run, 1),
                    "grad_ratio_step0": _ratios(g0),
                    "grad_ratio_end": _ratios(g1),
                    "lambda_final": None if lam is None else float(lam[-1]),
                    "lambda_max": None if lam is None else float(np.nanmax(lam)),
                    "lambda_bounded": None if lam is None else _bounded(lam),
                }
            )
            if seed == b["seeds"][0] and method in ("plain", "annealing"):
                histograms.setdefault("step 0", g0)
                histograms[f"end of {method}"] = g1
            curves[(method, seed)] = result.history
    session.parts["runs"] = rows
    session.parts["budget"] = b

    def pick(method: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["method"] == method]

    plain, ann = pick("plain"), pick("annealing")
    m3, m4 = pick("modified"), pick("modified+annealing")

    def ratio(over: list[dict[str, Any]], under: list[dict[str, Any]]) -> list[float | None]:
        return [p["error"] / a["error"] if p["error"] and a["error"] else None for p, a in zip(over, under)]

    gains, gains_m3, gains_m4 = ratio(plain, ann), ratio(plain, m3), ratio(plain, m4)
    session.table(
        f"relative L2 error after {b['steps'] - 1:,} steps (M1 plain, M2 annealing, M3 modified MLP, M4 both)",
        [
            {
                "seed": p["seed"],
                "M1": fmt(p["error"]),
                "M2": fmt(a["error"]),
                "M3": fmt(c["error"]),
                "M4": fmt(d["error"]),
                "M1/M2, M1/M3, M1/M4": f"{fmt(g)}×, {fmt(g3)}×, {fmt(g4)}×",
                "final λ M2, M4": f"{fmt(a['lambda_final'])}, {fmt(d['lambda_final'])}",
                "ms/step M1–M4": ", ".join(f"{r['ms_per_step']:.2f}" for r in (p, a, c, d)),
            }
            for p, a, c, d, g, g3, g4 in zip(plain, ann, m3, m4, gains, gains_m3, gains_m4)
        ],
    )
    r0 = [v for r in plain for v in r["grad_ratio_step0"].values()]
    r1 = [v for r in plain for v in r["grad_ratio_end"].values()]
    ra = [v for r in ann for v in r["grad_ratio_end"].values()]
    session.claim(
        "pathology",
        "Plain training: the boundary loss's gradients are much smaller than the residual loss's "
        "(unbalanced back-propagated gradients)",
        W21,
        f"per layer mean|∂L_r/∂W| / mean|∂L_bc/∂W|: {span(r0)} at step 0, {span(r1)} at the end of plain training; "
        f"with annealing, mean|∂L_r/∂W| / mean|∂(λ·L_bc)/∂W| at the end: {span(ra)}",
        all(x > 10 for x in r0 + r1),
        "ratio > 10 in every layer at step 0 and at the end of plain training, every seed",
        partly=all(x > 1 for x in r0 + r1),
    )
    session.claim(
        "accuracy",
        "Learning-rate annealing alone (M2) improves the accuracy by 50–100× (the abstract's figure, which the "
        "paper reaches with M4)",
        W21,
        "per seed: plain "
        + ", ".join(fmt(p["error"]) for p in plain)
        + " vs annealing "
        + ", ".join(fmt(a["error"]) for a in ann)
        + f" ({', '.join(fmt(g) for g in gains)}× better)",
        all(g is not None and g >= 50 for g in gains),
        "≥ 50× on every seed (partly: ≥ 5×)",
        partly=all(g is not None and g >= 5 for g in gains),
    )
    session.claim(
        "architecture",
        "Annealing and the modified MLP together (M4) improve the accuracy by 50–100× over a plain MLP (M1)",
        W21,
        "per seed: M1 "
        + ", ".join(fmt(p["error"]) for p in plain)
        + " vs M4 "
        + ", ".join(fmt(d["error"]) for d in m4)
        + f" ({', '.join(fmt(g) for g in gains_m4)}× better; M3 alone: {', '.join(fmt(g) for g in gains_m3)}×)",
        all(g is not None and g >= 50 for g in gains_m4),
        "≥ 50× on every seed (partly: ≥ 5×)",
        partly=all(g is not None and g >= 5 for g in gains_m4),
    )
    annealed = ann + m4
    session.claim(
        "lambda",
        "The annealed weight λ settles (no runaway)",
        W21,
        f"final λ {span([a['lambda_final'] for a in annealed])}, max {span([a['lambda_max'] for a in annealed])} "
        "(M2 and M4)",
        all(a["lambda_bounded"] for a in annealed),
        "λ finite, max over the last quarter ≤ 2× max before it, every seed, M2 and M4",
    )
    from pinnlab.reproduce.figures import helmholtz_figures

    for path in helmholtz_figures(session, curves, histograms):
        session.figure(path)
