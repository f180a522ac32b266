"""Cost of ``diagnostics.sharpness``: a whole run with it on against the same run with it off.

Usage::

    python benchmarks/speed/sharpness_overhead.py [--steps 1000] [--rounds 3] [--out FILE.json]

Method: for each case (``poisson2d`` preset as in trainer_overhead.py, and the ``seed-fixed``
preset at its batch of 10), two fresh trainers per round, sharpness on and off, in alternating
order (on/off, off/on, ...), each ``fit()`` with ``training.steps=--steps`` and the default
``diagnostics.every`` (100).  Reported per case: median wall and process-CPU seconds of the whole
fit (compilation of the HVP function and the first, cold, Lanczos check included, since a sweep
trial pays them), and the overhead ``on / off − 1`` of the medians.  Process CPU time is the
figure to trust on a shared machine: other processes' load stretches wall time but not the CPU
time this process uses (TensorFlow's threads included).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks._env import environment, write_results  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "sharpness_overhead.json"
CASES = {
    "poisson2d": ("poisson2d", []),
    "seed-fixed": ("seed-fixed", []),
}


def _fit(preset, overrides, sharpness: bool, steps: int) -> tuple[float, float]:
    from pinnlab.config import load_config
    from pinnlab.training.trainer import Trainer

    cfg = load_config(
        preset, [*overrides, f"training.steps={steps}", f"diagnostics.sharpness={str(sharpness).lower()}"]
    )
    t = Trainer(cfg)
    w0, c0 = time.perf_counter(), time.process_time()
    t.fit()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    env = environment()  # at the start (date, load); the load at the end is added below
    out = {"steps": args.steps, "rounds": args.rounds, "every": 100, "cases": {}}
    for name, (preset, overrides) in CASES.items():
        times = {True: [], False: []}
        for r in range(args.rounds):
            for flag in (True, False) if r % 2 == 0 else (False, True):
                times[flag].append(_fit(preset, overrides, flag, args.steps))
        on_w = statistics.median(w for w, _ in times[True])
        off_w = statistics.median(w for w, _ in times[False])
        on_c = statistics.median(c for _, c in times[True])
        off_c = statistics.median(c for _, c in times[False])
        out["cases"][name] = {
            "wall_on_s": round(on_w, 2),
            "wall_off_s": round(off_w, 2),
            "wall_overhead": round(on_w / off_w - 1, 3),
            "cpu_on_s": round(on_c, 2),
            "cpu_off_s": round(off_c, 2),
            "cpu_overhead": round(on_c / off_c - 1, 3),
            # every fit (wall, CPU seconds) in run order within its flag: the spread shows the noise
            "runs": {
                "on": [[round(w, 2), round(c, 2)] for w, c in times[True]],
                "off": [[round(w, 2), round(c, 2)] for w, c in times[False]],
            },
        }
        print(name, out["cases"][name], flush=True)
    out["machine"] = {**env, "loadavg_end": list(os.getloadavg())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, out, env, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
