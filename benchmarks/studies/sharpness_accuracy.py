"""Accuracy of the sharpness estimate at the first check: Lanczos against power iteration.

Usage::

    python benchmarks/studies/sharpness_accuracy.py [--starts 3] [--out FILE.json]

Method: for each case (the presets, and three seed-problem variants of the README sweep), a fresh
trainer at initialisation and the sharpness check's own operator (the HVP of the loss on the first
batch's points, at most ``diagnostics.sharpness_points`` per set, as :class:`Sharpness` uses it,
compiled here so that long references are cheap).  The reference top eigenvalue
is Lanczos run to min(80, number of weights) steps.  From ``--starts`` random start vectors, the
estimate after k = 3…12 HVPs by power iteration (the Rayleigh quotient of the last iterate, the
method used before) and by Lanczos (:func:`pinnlab.training.sharpness.lanczos_top`), as a fraction
of the reference; and what the default cold check does (``diagnostics.sharpness_cold_iters`` = 12,
``sharpness_tol`` = 0.05, at least ``sharpness_iters`` = 3): its number of HVPs and its fraction.
Reported: per case and start, and over all of them the range of the fraction for power iteration
at 12 and Lanczos at 6 and 8, and of the default check's HVPs.  Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._env import environment, write_results  # noqa: E402

CASES = [
    ("seed", []),
    ("seed", ["model.activation=tanh", "model.width=20"]),
    ("seed", ["model.activation=silu", "model.width=5", "loss.formulation=squared"]),
    ("seed", ["model.activation=sin", "model.width=100"]),
    ("seed-fixed", []),
    ("poisson1d", []),
    ("poisson2d", []),
    ("helmholtz2d", []),
    ("convection1d", []),
]


def power(apply, start, iters: int) -> list[float]:
    """Rayleigh quotients of power iteration after 1…``iters`` products."""
    import numpy as np

    v = start / np.linalg.norm(start)
    out = []
    for _ in range(iters):
        av = apply(v)
        out.append(float(v @ av))
        v = av / np.linalg.norm(av)
    return out


def measure_case(base: str, overrides: list[str], starts: int) -> dict:
    import numpy as np

    from pinnlab.config import load_config
    from pinnlab.training import build_trainer
    from pinnlab.training.sharpness import lanczos_top, threshold

    cfg = load_config(base, overrides + ["training.steps=1"])
    t = build_trainer(cfg)
    s = t.diagnostics.sharpness
    # the check's own HVP on its own points, compiled (no preconditioner at initialisation)
    apply, n = s.operator(next(t.batches()))

    ref = lanczos_top(apply, np.random.default_rng(0).standard_normal(n), min(80, n))[0]
    d = cfg.diagnostics
    # the check's floor: the stability threshold where there is one at initialisation (SGD; Adam's
    # preconditioner is undefined before its first update)
    opt = cfg.optimizer
    floor = threshold(opt, opt.learning_rate) if opt.name == "sgd" else 0.0
    rows = []
    for k in range(starts):
        start = np.random.default_rng(100 + k).standard_normal(n)
        p = power(apply, start, 12)
        lanczos = {j: lanczos_top(apply, start, j)[0] / ref for j in range(3, 13)}
        theta, _, steps, _ = lanczos_top(
            apply, start, d.sharpness_cold_iters, min_iters=d.sharpness_iters, tol=d.sharpness_tol, floor=floor
        )
        rows.append(
            {
                "start": 100 + k,
                "power": {j: round(p[j - 1] / ref, 4) for j in range(3, 13)},
                "lanczos": {j: round(v, 4) for j, v in lanczos.items()},
                "default_check": {
                    "hvps": steps,
                    "fraction": round(theta / ref, 4),
                    # the error of the ratio it gives, in units of max(ratio, 1): what the check promises
                    "ratio_error": round(abs(theta - ref) / max(abs(ref), floor), 4),
                },
            }
        )
    return {"case": " ".join([base, *overrides]), "weights": n, "reference": ref, "starts": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3, help="random start vectors per case")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sharpness_accuracy.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env = environment()
    t0 = time.perf_counter()
    cases = []
    for base, overrides in CASES:
        cases.append(measure_case(base, overrides, args.starts))
        print(json.dumps({cases[-1]["case"]: [r["default_check"] for r in cases[-1]["starts"]]}), file=sys.stderr)
    rows = [r for c in cases for r in c["starts"]]

    def span(values):
        return [round(min(values), 4), round(max(values), 4)]

    summary = {
        "power_12": span([r["power"][12] for r in rows]),
        "lanczos_6": span([r["lanczos"][6] for r in rows]),
        "lanczos_8": span([r["lanczos"][8] for r in rows]),
        "default_check_fraction": span([r["default_check"]["fraction"] for r in rows]),
        "default_check_ratio_error": span([r["default_check"]["ratio_error"] for r in rows]),
        "default_check_hvps": span([r["default_check"]["hvps"] for r in rows]),
        "default_check_hvps_mean": round(sum(r["default_check"]["hvps"] for r in rows) / len(rows), 2),
    }
    out = {"environment": env, "seconds": round(time.perf_counter() - t0, 1), "summary": summary, "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, out, env, indent=2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
