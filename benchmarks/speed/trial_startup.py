"""What a sweep trial pays before it trains: building the Trainer and tracing its first step.

Every trial builds a new model, so its compiled step is traced anew (shapes and variables differ).
This measures, in one worker process as a sweep runs them, for the trials of
``sweeps/seed_divergence.yaml`` (each trained for ``--steps`` steps, untracked):

* ``build_seconds``: ``Trainer(cfg)`` (model, optimizer, tf.function objects, sampling);
* ``compile_seconds``: the first step (tracing + first call), as reported in ``RunResult``;
* ``train_seconds``: the remaining wall time of ``fit()``;
* the share of start-up in the trial.

Usage: ``python benchmarks/speed/trial_startup.py [--trials 8] [--steps 3600] [--out FILE.json]``
(default output ``benchmarks/results/trial_startup.json``; ~2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks._env import environment, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3600, help="steps per trial (the sweep's budget)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "trial_startup.json"))
    args = ap.parse_args(argv)

    import optuna
    import tensorflow as tf

    from pinnlab.sweep.space import suggest
    from pinnlab.sweep.spec import load_sweep
    from pinnlab.training import Trainer

    spec = load_sweep(ROOT / "sweeps" / "seed_divergence.yaml")
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    rows = []
    for i in range(args.trials):
        params = suggest(study.ask(), spec.space)
        cfg = spec.trial_config(params, {"training.steps": args.steps})
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        build = time.perf_counter() - t0
        result = trainer.fit()
        total = time.perf_counter() - t0
        row = {
            "trial": i,
            "params": params,
            "outcome": result.outcome,
            "steps_run": result.steps_run,
            "build_seconds": round(build, 4),
            "compile_seconds": round(result.compile_seconds, 4),
            "train_seconds": round(result.wall_seconds - result.compile_seconds, 4),
            "total_seconds": round(total, 4),
        }
        row["startup_share"] = round((build + result.compile_seconds) / total, 4)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    def med(key, subset=rows):
        return round(statistics.median(r[key] for r in subset), 4)

    later = rows[1:] or rows
    out = {
        "benchmark": "trial_startup",
        "command": "python benchmarks/speed/trial_startup.py " + " ".join(argv or sys.argv[1:]),
        "sweep": "sweeps/seed_divergence.yaml",
        "environment": {
            "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "cpu_count": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
        "first_trial": {k: rows[0][k] for k in ("build_seconds", "compile_seconds", "total_seconds")},
        "later_trials_median": {
            k: med(k, later)
            for k in ("build_seconds", "compile_seconds", "train_seconds", "total_seconds", "startup_share")
        },
        "trials": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_results(Path(args.out), out, environment(), indent=2)
    print(json.dumps(out["later_trials_median"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
