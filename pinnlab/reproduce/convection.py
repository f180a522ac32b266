"""``convection``: failure modes of PINNs on u_t + β u_x = 0 (Krishnapriyan et al., NeurIPS 2021).

Setup (preset ``convection1d`` with ``optimizer.name: lbfgs``): x ∈ [0, 2π), t ∈ [0, 1],
u(x, 0) = sin x, periodic in x, exact u = sin(x − βt); 2 → 4×50 tanh → 1; 1000 collocation points,
256 initial and 100 boundary pairs, float32; SciPy L-BFGS-B over the flattened weights, full batch,
each run stopping on its own (``ftol``) or at ``training.steps`` iterations.  Error: relative L2 on
the paper's 256 × 100 grid.

* **plain**: each β from the initializer, for β ∈ {1, 10, 20, 30, 40} and every seed;
* **curriculum** (the paper's "curriculum regularization"): warm start from the previous β of the
  list: the plain β = 1 solution starts β = 10, whose result starts β = 20, and so on.

A failing plain run does not diverge: it drives the training loss to ~1e-4 of its initial value
while the answer is wrong, which pinnlab classifies ``silent_failure`` (relative error above
``divergence.max_rel_error`` after a training loss at most ``divergence.low_loss_ratio`` of its
initial value; the held-out residual ratio shows the overfitting of the collocation points).

``--quick``: β ∈ {1, 10, 20}, one seed, at most 400 iterations per run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pinnlab.core.outcomes import Outcome
from pinnlab.reproduce.base import Session, fmt, span

TITLE = "convection: PINN failure modes for u_t + β u_x = 0, plain vs curriculum (L-BFGS)"
SOURCE = (
    "A. S. Krishnapriyan, A. Gholami, S. Zhe, R. M. Kirby, M. W. Mahoney, 'Characterizing possible failure "
    "modes in physics-informed neural networks', NeurIPS 2021"
)
K21 = "Krishnapriyan 2021"
FAILED = 0.5  # relative L2 error above which a run "fails" (divergence.max_rel_error's default)


def _budget(session: Session) -> dict[str, Any]:
    if session.quick:
        return {"betas": [1.0, 10.0, 20.0], "seeds": [0], "steps": 400}
    return {"betas": [1.0, 10.0, 20.0, 30.0, 40.0], "seeds": [0, 1, 2], "steps": 15000}


def _config(session: Session, beta: float, seed: int, steps: int):
    return session.config(
        "convection1d",
        {
            "problem.params.beta": beta,
            "optimizer.name": "lbfgs",
            "training.steps": steps,
            "training.seed": seed,
        },
    )


def _row(result, beta: float, method: str, seed: int) -> dict[str, Any]:
    return {
        "beta": beta,
        "method": method,
        "seed": seed,
        "error": result.rel_l2_error,
        "outcome": result.outcome,
        "iterations": result.steps_run,
        "loss_ratio": (
            result.final_loss / result.initial_loss if result.initial_loss and result.final_loss is not None else None
        ),
        "heldout_ratio": result.heldout_ratio,
        "wall_seconds": result.wall_seconds,
    }


def _errors(rows, beta, method) -> list[float | None]:
    return [r["error"] for r in rows if r["beta"] == beta and r["method"] == method]


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def run(session: Session) -> None:
    b = _budget(session)
    betas, seeds = b["betas"], b["seeds"]
    rows: list[dict[str, Any]] = []
    pictures: dict[str, np.ndarray] = {}
    for seed in seeds:
        warm = None
        for beta in betas:
            cfg = _config(session, beta, seed, b["steps"])
            result, trainer = session.train(cfg, f"beta={beta:g}", part="plain")
            rows.append(_row(result, beta, "plain", seed))
            if seed == seeds[0] and beta == betas[-1]:
                pictures["plain"] = trainer.predict(trainer.eval_x)[:, 0]
                pictures["exact"] = trainer.eval_u[:, 0]
            if warm is None:  # the curriculum starts from the plain solution of the smallest beta
                warm = trainer.get_weights()
                rows.append(dict(rows[-1], method="curriculum"))
                continue
            result, trainer = session.train(cfg, f"beta={beta:g}", part="curriculum", weights=warm)
            rows.append(_row(result, beta, "curriculum", seed))
            warm = trainer.get_weights()
            if seed == seeds[0] and beta == betas[-1]:
                pictures["curriculum"] = trainer.predict(trainer.eval_x)[:, 0]
    session.parts["runs"] = rows
    session.parts["budget"] = b

    table = []
    for beta in betas:
        plain, curr = _errors(rows, beta, "plain"), _errors(rows, beta, "curriculum")
        outcomes = [r["outcome"] for r in rows if r["beta"] == beta and r["method"] == "plain"]
        table.append(
            {
                "beta": beta,
                "plain error (per seed)": ", ".join(fmt(e) for e in plain),
                "plain outcomes": ", ".join(outcomes),
                "curriculum error (per seed)": ", ".join(fmt(e) for e in curr),
                "plain/curriculum (medians)": fmt(_ratio(_median(plain), _median(curr))),
            }
        )
    session.table(
        "relative L2 error by beta (plain: from the initializer; curriculum: warm start from the previous beta)", table
    )

    lo = betas[0]
    session.claim(
        f"beta={lo:g}",
        "Plain PINN training succeeds for small β (error around 1e-2)",
        K21,
        f"plain error {span(_errors(rows, lo, 'plain'))} on {len(seeds)} seed(s)",
        all(e is not None and e < 0.05 for e in _errors(rows, lo, "plain")),
        "error < 0.05 on every seed",
    )
    if 10.0 in betas:
        session.claim(
            "beta=10",
            "… and for β = 10",
            K21,
            f"plain error {span(_errors(rows, 10.0, 'plain'))}",
            all(e is not None and e < 0.05 for e in _errors(rows, 10.0, "plain")),
            "error < 0.05 on every seed",
        )
    if 20.0 in betas:
        e20 = _errors(rows, 20.0, "plain")
        session.claim(
            "beta=20",
            "Plain training still gives a small error up to β ≈ 20",
            K21,
            f"plain error {', '.join(fmt(e) for e in e20)} (per seed)",
            all(e is not None and e < 0.05 for e in e20),
            "error < 0.05 on every seed",
        )
        p20, c20 = _median(e20), _median(_errors(rows, 20.0, "curriculum"))
        session.claim(
            "beta=20",
            "Curriculum regularization (warm start from smaller β) fixes what plain training gets wrong",
            K21,
            f"median error plain {fmt(p20)} vs curriculum {fmt(c20)} ({fmt(_ratio(p20, c20))}× lower)",
            _ratio(p20, c20) is not None and _ratio(p20, c20) >= 10,
            "curriculum median at least 10× below plain median",
        )
    for beta in (30.0, 40.0):
        if beta not in betas:
            continue
        plain = _errors(rows, beta, "plain")
        session.claim(
            f"beta={beta:g}",
            f"Plain training fails at β = {beta:g} (error near 1)",
            K21,
            f"plain error {', '.join(fmt(e) for e in plain)} (per seed)",
            all(e is not None and e > FAILED for e in plain),
            f"error > {FAILED} on every seed",
            partly=any(e is not None and e > FAILED for e in plain),
        )
    if 30.0 in betas:
        p30, c30 = _errors(rows, 30.0, "plain"), _errors(rows, 30.0, "curriculum")
        ratio = _ratio(_median(p30), _median(c30))
        session.claim(
            "beta=30",
            "Curriculum regularization lowers the β = 30 error by one to two orders of magnitude",
            K21,
            f"per seed plain {', '.join(fmt(e) for e in p30)} vs curriculum {', '.join(fmt(e) for e in c30)}; "
            f"medians {fmt(_median(p30))} vs {fmt(_median(c30))} ({fmt(ratio)}×)",
            ratio is not None and ratio >= 10,
            "curriculum median at least 10× below plain median",
            partly=ratio is not None and ratio > 1,
        )
    failed = [r for r in rows if r["method"] == "plain" and r["error"] is not None and r["error"] > FAILED]
    session.claim(
        "silent",
        "The failures are not divergence: the training loss becomes small while the solution is wrong",
        K21,
        (
            f"{sum(r['outcome'] == Outcome.SILENT_FAILURE for r in failed)}/{len(failed)} failing plain runs classified "
            f"silent_failure; final/initial training loss {span([r['loss_ratio'] for r in failed])}, "
            f"held-out/training residual {span([r['heldout_ratio'] for r in failed])}"
        )
        if failed
        else "no plain run failed",
        all(r["outcome"] == Outcome.SILENT_FAILURE for r in failed) if failed else None,
        "every plain run with error > 0.5 classified silent_failure",
    )
    from pinnlab.reproduce.figures import convection_figures

    for path in convection_figures(session, rows, betas, pictures):
        session.figure(path)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b
