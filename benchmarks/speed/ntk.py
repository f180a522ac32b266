"""What NTK weighting and the ``ntk_trace`` diagnostic cost, against the compiled training step.

For each preset (default ``poisson1d`` and ``poisson2d``, with their own ``jit_compile`` setting)
one Trainer with ``loss.weighting.scheme: ntk`` and ``diagnostics.ntk_trace: true`` is built and
three compiled functions are timed on the training points, interleaved in rounds so that load
drifting on a shared machine hits all three alike: the training step (``Trainer.train_step``), one λ
update (exact per-point traces of every term, then the assigns) and one ``ntk_trace`` diagnostic
call.  Per-step costs follow from the intervals: update / ``loss.weighting.every`` (default 100)
and trace / ``diagnostics.every`` (default 100).  First calls (tracing + XLA compilation) are
reported apart.  Also the Hutchinson estimate (8 probes, the default) against the exact traces.

Run from the repository root: ``python benchmarks/speed/ntk.py`` (~1-2 minutes on 2 cores); writes
``benchmarks/results/ntk.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks._env import environment, write_results  # noqa: E402
from pinnlab.config import load_config  # noqa: E402
from pinnlab.numerics.ntk import TermNTK  # noqa: E402
from pinnlab.training import Trainer  # noqa: E402


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    out = fn(*args)
    for v in out.values() if isinstance(out, dict) else [out]:
        np.asarray(v)
    return 1000 * (time.perf_counter() - t0)


def measure(preset: str, rounds: int, steps_per_round: int) -> dict:
    cfg = load_config(preset, ["loss.weighting.scheme=ntk", "diagnostics.ntk_trace=true"])
    trainer = Trainer(cfg)
    points = trainer._tensors(trainer.train_points)
    first = {
        "step": _timed(trainer.train_step, points),
        "update": _timed(trainer.ntk.update, points),
        "trace": _timed(trainer.ntk.diagnostics, points),
    }
    times: dict[str, list[float]] = {"step": [], "update": [], "trace": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps_per_round):
            trainer.train_step(points)
        np.asarray(trainer.train_step(points))
        times["step"].append(1000 * (time.perf_counter() - t0) / (steps_per_round + 1))
        times["update"].append(_timed(trainer.ntk.update, points))
        times["trace"].append(_timed(trainer.ntk.diagnostics, points))
    med = {k: float(np.median(v)) for k, v in times.items()}
    every, diag_every = cfg.loss.weighting.every, cfg.diagnostics.every
    exact = {t: float(v) for t, v in trainer.ntk.exact.traces(points).items()}
    hutch = TermNTK(
        trainer.problem,
        trainer.model,
        trainer.vars,
        trainer.train_points,
        trainer.terms,
        estimator="hutchinson",
        dtype=trainer.dtype,
    )
    hfn = tf.function(lambda p, s: hutch.traces(p, s), autograph=False)
    errors = {t: [] for t in trainer.terms}
    for seed in range(5):
        est = hfn(points, tf.constant([seed, 0]))
        for t in trainer.terms:
            errors[t].append(abs(float(est[t]) / exact[t] - 1))
    return {
        "preset": preset,
        "jit_compile": cfg.training.jit_compile,
        "points": {k: len(v) for k, v in trainer.train_points.items()},
        "parameters": trainer.ntk.exact.n_params,
        "first_call_ms": first,
        "median_ms": med,
        "quartiles_ms": {k: [float(np.percentile(v, 25)), float(np.percentile(v, 75))] for k, v in times.items()},
        "update_every": every,
        "diagnostics_every": diag_every,
        "update_ms_per_step": med["update"] / every,
        "update_share_of_step": med["update"] / every / med["step"],
        "trace_ms_per_step": med["trace"] / diag_every,
        "trace_share_of_step": med["trace"] / diag_every / med["step"],
        "update_in_steps": med["update"] / med["step"],
        "trace_in_steps": med["trace"] / med["step"],
        "hutchinson_8_probes_relative_error": {
            t: {"median": float(np.median(e)), "max": float(max(e))} for t, e in errors.items()
        },
        "exact_traces": exact,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["poisson1d", "poisson2d"])
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--steps", type=int, default=20, help="training steps per round (default 20)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ntk.json"))
    args = ap.parse_args(argv)
    logging.getLogger("pinnlab").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    env = environment()
    results = [measure(p, args.rounds, args.steps) for p in args.presets]
    env["loadavg_end"] = list(os.getloadavg())
    doc = {
        "benchmark": "ntk",
        "command": "python benchmarks/speed/ntk.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "environment": env,
        "results": results,
        "total_seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, doc, env, indent=2)
    for r in results:
        m = r["median_ms"]
        print(
            f"{r['preset']:10s} step {m['step']:.2f} ms | update {m['update']:.1f} ms "
            f"({r['update_in_steps']:.1f} steps; {100 * r['update_share_of_step']:.1f} % at every={r['update_every']})"
            f" | ntk_trace {m['trace']:.1f} ms ({r['trace_in_steps']:.1f} steps;"
            f" {100 * r['trace_share_of_step']:.1f} % at every={r['diagnostics_every']})"
            f" | hutchinson 8 probes {r['hutchinson_8_probes_relative_error']}"
        )
    print(f"wrote {args.out} in {doc['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
