"""What a run's occasional functions cost eagerly, traced and compiled: the numbers behind the eager budgets.

Usage::

    python benchmarks/speed/eager_costs.py [--rounds 2] [--out FILE.json]

Method: for each network (the seed preset, three README-sweep variants: activation, width,
formulation, l2; and poisson2d, whose step and diagnostics are XLA-compiled), a fresh trainer at initialisation, and for each function that
:mod:`pinnlab.training.compiled` runs eagerly before tracing (the step-0 diagnostics, the update
ratio, the prediction on the evaluation grid): seconds of one eager call (the second, after a
warm-up call), of the trace and first compiled call, and of one compiled call after that.  For the
sharpness check (:mod:`pinnlab.training.sharpness`): a cold check run eagerly (its HVPs, as a fresh
trainer's first check), the trace and first call of the compiled HVP, and one compiled HVP; and 6
HVPs run eagerly two ways: each re-running the forward pass and the first gradient
(:func:`~pinnlab.training.sharpness.hessian_vector_product` per vector), and all on one recorded
gradient (:func:`~pinnlab.training.sharpness.hessian_vector_products`), with whether their products
are bitwise equal.  Medians over ``--rounds`` (fresh trainers each round).  The ratio trace / eager
call is the number of eager calls a trace costs (the ski-rental budget).  About a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._env import environment, write_results  # noqa: E402

CASES = [
    ("seed", []),
    ("seed", ["model.activation=tanh", "model.width=20"]),
    ("seed", ["model.activation=sin", "model.width=100", "loss.formulation=squared"]),
    ("seed", ["model.activation=relu", "model.width=5", "regularization.l2=0.01"]),
    ("poisson2d", []),
]


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_case(base: str, overrides: list[str]) -> dict:
    import numpy as np
    import tensorflow as tf

    from pinnlab.config import load_config
    from pinnlab.training import build_trainer
    from pinnlab.training.sharpness import hessian_vector_product, hessian_vector_products

    t = build_trainer(load_config(base, overrides + ["training.steps=50"]))
    points = next(t.batches())
    d = t.diagnostics
    out: dict = {}
    grid = tf.constant(t.eval_x, t.dtype)
    for name, fn, args in [
        ("diagnostics", d.measure, (points,)),
        ("update_ratio", d.update_ratio, ()),
        ("prediction", t.predictor, (grid,)),
    ]:
        fn.python_function(*args)  # warm-up
        eager = _seconds(lambda: fn.python_function(*args))
        trace = _seconds(lambda: fn.function(*args))
        compiled = _seconds(lambda: fn.function(*args))
        out[name] = {"eager": eager, "trace_and_first_call": trace, "compiled": compiled}

    s = d.sharpness
    check = _seconds(lambda: s(points))  # the trainer's first check: eager, cold
    sub = s.subset(points)
    rng = np.random.default_rng(0)
    vs = [[tf.constant(rng.standard_normal(w.shape), w.dtype) for w in t.vars] for _ in range(6)]
    trace = _seconds(lambda: s.compiled_hvp.function(sub, vs[0], None))
    compiled = _seconds(lambda: s.compiled_hvp.function(sub, vs[1], None))
    out["sharpness_check"] = {
        "eager": check,
        "hvps": s.last_hvps,
        "hvp_trace_and_first_call": trace,
        "hvp_compiled": compiled,
    }

    loss = lambda: t._total(t._losses(sub)[0])  # noqa: E731
    hessian_vector_product(loss, t.vars, vs[0])  # warm-up
    separate, shared = [], []
    t_separate = _seconds(lambda: separate.extend(hessian_vector_product(loss, t.vars, v)[1] for v in vs))

    def on_one_gradient():
        _, hvp = hessian_vector_products(loss, t.vars)
        shared.extend(hvp(v) for v in vs)

    t_shared = _seconds(on_one_gradient)
    bitwise = all(np.array_equal(a.numpy(), b.numpy()) for x, y in zip(separate, shared) for a, b in zip(x, y))
    out["six_hvps"] = {"each_own_forward": t_separate, "one_recorded_gradient": t_shared, "bitwise_equal": bitwise}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="fresh trainers per case; medians are reported")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eager_costs.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env = environment()
    t0 = time.perf_counter()
    cases = []
    for base, overrides in CASES:
        rounds = [measure_case(base, overrides) for _ in range(args.rounds)]
        merged: dict = {}
        for part in rounds[0]:
            merged[part] = {}
            for key, value in rounds[0][part].items():
                values = [r[part][key] for r in rounds]
                if isinstance(value, bool):
                    merged[part][key] = all(values)
                elif isinstance(value, int):
                    merged[part][key] = values
                else:
                    merged[part][key] = round(statistics.median(values), 4)
            if "eager" in merged[part] and "trace_and_first_call" in merged[part]:
                merged[part]["trace_in_eager_calls"] = round(
                    merged[part]["trace_and_first_call"] / max(merged[part]["eager"], 1e-9), 1
                )
        case = {"case": " ".join([base, *overrides]), **merged}
        cases.append(case)
        print(json.dumps(case), file=sys.stderr)
    out = {
        "environment": {**env, "loadavg_end": list(os.getloadavg())},
        "rounds": args.rounds,
        "seconds": round(time.perf_counter() - t0, 1),
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, out, env, indent=2)
    print(json.dumps(cases, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
