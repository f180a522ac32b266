"""Tracking overhead: the same run with and without pinnlab.tracking.RunTracker (MLflow, SQLite).

Usage::

    python benchmarks/speed/tracking_overhead.py [--out FILE.json] [--repeats R] [--strides 10,1] [--quick]

Cases (default diagnostics interval, ``diagnostics.every=100``):

* ``seed-fixed --set training.epochs=10``: 3,600 fast steps (batch 10; ~2 ms/step), 5 per-step
  metrics, ~17 diagnostics values per 100 steps: the case where per-step logging hurts most, and
  a short run (~6 s) in which the fixed end-of-run cost (plots) weighs most;
* ``poisson2d --set training.steps=1000``: full batch, ~10+ ms/step, 5 per-step metrics, 29
  diagnostics values per 100 steps;
* ``seed-fixed`` as shipped (36,000 steps, ~1 minute per run; the default stride only).
  ``--cases`` selects a subset; the whole default set takes ~20 minutes on 2 cores.

Method
------
* One SQLite store in a temporary directory, created (schema migrations) before any timing; its
  creation time is reported apart, as is ``import mlflow`` in a fresh interpreter: both are
  one-time costs of a process / of a new store directory, not of a run.
* Every round runs, per case, the untracked run and one tracked run per metric stride
  (``--strides``, default 20 = RunTracker's default, and 1 = every step), in an order rotated
  from round to round (interleaved, so load drifting over time hits all variants alike).
  Untracked: ``Trainer(cfg).fit()``.  Tracked: ``with RunTracker(cfg, ...): Trainer(cfg,
  [tracker]).fit()``, i.e. run creation, params, config.yaml, metrics, history.csv, the PNG plots
  and the status update are all inside the timed region.  Both include building the trainer and
  tracing the step (identical work).
* Reported per variant: the median wall time over rounds; the overhead = median over rounds of
  (tracked wall / untracked wall of the same round - 1); and the time spent inside the tracker's
  own methods (it logs synchronously on the training thread, so this is its direct cost), split
  into start (run + params + config.yaml), during training (buffering + periodic log_batch
  writes) and end (last metrics, tags, history.csv, plots, status), in wall seconds and in CPU
  seconds of the training thread (``time.thread_time``: robust to other processes competing for
  the 2 cores, which inflate every wall time; it misses I/O waits such as SQLite's fsync).  Also
  the paired process-CPU overhead, and the marginal CPU cost of one logged metric value (from the
  difference between the largest and the smallest stride).
* A warm-up fit of each case runs first (TensorFlow's one-time initialisation), untimed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks._env import environment, write_results  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pinnlab.config import load_config  # noqa: E402
from pinnlab.tracking import RunTracker  # noqa: E402
from pinnlab.training import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STRIDE = inspect.signature(RunTracker).parameters["metric_every"].default
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "tracking_overhead.json"
# name: (preset, overrides, metric strides to time; None = --strides)
CASES = {
    "seed-fixed_epochs10": ("seed-fixed", ["training.epochs=10"], None),
    "poisson2d_steps1000": ("poisson2d", ["training.steps=1000"], None),
    # the preset as the README runs it (36,000 steps, minutes): RunTracker's default stride only
    "seed-fixed_full": ("seed-fixed", [], [DEFAULT_STRIDE]),
}
QUICK = {
    "seed-fixed_epochs10": ("seed-fixed", ["training.epochs=2"], None),
    "poisson2d_steps1000": ("poisson2d", ["training.steps=200"], None),
}


class TimedTracker(RunTracker):
    """RunTracker that adds up the wall and CPU (thread) time spent in its own methods, by phase."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = {"start": 0.0, "train": 0.0, "end": 0.0}
        self.phase_cpu = dict(self.phase)
        self.values_buffered = 0

    def _timed(self, phase, fn, *args):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*args)
        finally:
            self.phase[phase] += time.perf_counter() - t
            self.phase_cpu[phase] += time.thread_time() - c

    def start(self):
        return self._timed("start", super().start)

    def end(self, status, error=None):
        return self._timed("end", super().end, status, error)

    def on_step(self, step, metrics):
        return self._timed("train", super().on_step, step, metrics)

    def on_diagnostics(self, step, metrics):
        return self._timed("train", super().on_diagnostics, step, metrics)

    def on_train_end(self, result):
        return self._timed("end", super().on_train_end, result)

    def _add(self, step, metrics, keys=None):
        before = len(self._buffer)
        super()._add(step, metrics, keys)
        self.values_buffered += max(0, len(self._buffer) - before)


def _env() -> dict:
    import mlflow
    import tensorflow as tf

    return environment(tensorflow=tf.__version__, mlflow=mlflow.__version__)


def _import_seconds(module: str, repeats: int = 3) -> float:
    """Median time of ``import module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def _fit(cfg, uri: str | None, stride: int | None) -> dict:
    t, c = time.perf_counter(), time.process_time()
    if uri is None:
        result = Trainer(cfg).fit()
        return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "steps_run": result.steps_run}
    tracker = TimedTracker(cfg, tracking_uri=uri, experiment="tracking-overhead", metric_every=stride)
    with tracker:
        result = Trainer(cfg, [tracker]).fit()
    return {
        "wall": time.perf_counter() - t,
        "cpu": time.process_time() - c,
        "steps_run": result.steps_run,
        "tracker_seconds": dict(tracker.phase, total=sum(tracker.phase.values())),
        "tracker_cpu_seconds": dict(tracker.phase_cpu, total=sum(tracker.phase_cpu.values())),
        "metric_values": tracker.values_buffered,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--strides", default="20,1", help="metric_every values to time (default 20,1)")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of this script)")
    ap.add_argument("--cases", help=f"comma-separated subset of {', '.join(CASES)}")
    args = ap.parse_args(argv)
    logging.getLogger("pinnlab").setLevel(logging.ERROR)  # the runs' static warnings
    strides = [int(s) for s in args.strides.split(",") if s.strip()]
    cases = QUICK if args.quick else CASES
    if args.cases:
        cases = {k: cases[k] for k in args.cases.split(",")}

    env = _env()
    one_time = {
        "import_mlflow_seconds": _import_seconds("mlflow"),
        "import_pinnlab_tracking_seconds": _import_seconds("pinnlab.tracking.writer"),
    }
    tmp = tempfile.TemporaryDirectory(prefix="pinnlab-bench-")
    uri = f"sqlite:///{Path(tmp.name).resolve() / 'mlflow.db'}"
    t = time.perf_counter()
    with RunTracker(load_config("seed-fixed", ["training.steps=1"]), tracking_uri=uri, experiment="warm-up"):
        pass
    one_time["create_store_and_first_run_seconds"] = time.perf_counter() - t

    results = {}
    for name, (preset, overrides, case_strides) in cases.items():
        variants = [("untracked", None)] + [(f"tracked_every{s}", s) for s in case_strides or strides]
        cfg = load_config(preset, overrides)
        Trainer(load_config(preset, ["training.steps=20"])).fit()  # warm-up
        rounds = []
        for r in range(args.repeats):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            row = {}
            for vname, stride in order:
                row[vname] = _fit(cfg, uri, stride) if stride is not None else _fit(cfg, None, None)
                print(f"{name} round {r} {vname}: {row[vname]['wall']:.2f} s", file=sys.stderr, flush=True)
            rounds.append(row)
        base = [row["untracked"]["wall"] for row in rounds]
        summary = {
            "preset": preset,
            "overrides": overrides,
            "steps": rounds[0]["untracked"]["steps_run"],
            "untracked_wall_median_s": statistics.median(base),
        }
        summary["untracked_cpu_median_s"] = statistics.median(row["untracked"]["cpu"] for row in rounds)
        for vname, stride in variants[1:]:
            walls = [row[vname]["wall"] for row in rounds]
            own = [row[vname]["tracker_seconds"] for row in rounds]
            own_cpu = [row[vname]["tracker_cpu_seconds"] for row in rounds]
            phases = ("start", "train", "end", "total")
            summary[vname] = {
                "metric_every": stride,
                "wall_median_s": statistics.median(walls),
                "overhead_pct_median_paired": 100
                * statistics.median(row[vname]["wall"] / row["untracked"]["wall"] - 1 for row in rounds),
                "cpu_overhead_pct_median_paired": 100
                * statistics.median(row[vname]["cpu"] / row["untracked"]["cpu"] - 1 for row in rounds),
                "tracker_own_seconds_median": {k: statistics.median(o[k] for o in own) for k in phases},
                "tracker_own_cpu_seconds_median": {k: statistics.median(o[k] for o in own_cpu) for k in phases},
                "tracker_own_pct_of_untracked_median": 100
                * statistics.median(o["total"] for o in own)
                / statistics.median(base),
                "metric_values_logged": rounds[0][vname]["metric_values"],
            }
        tracked = [v for v, _ in variants[1:]]
        if len(tracked) >= 2:  # marginal CPU cost of one logged value, from the extreme strides
            lo, hi = summary[tracked[0]], summary[tracked[-1]]
            dv = hi["metric_values_logged"] - lo["metric_values_logged"]
            dc = hi["tracker_own_cpu_seconds_median"]["total"] - lo["tracker_own_cpu_seconds_median"]["total"]
            summary["marginal_cpu_us_per_value"] = 1e6 * dc / dv if dv else None
        summary["rounds"] = rounds
        results[name] = summary
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = {"env": env, "one_time": one_time, "repeats": args.repeats, "quick": args.quick, "cases": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, out, out["env"], indent=2)
    brief = {
        k: {
            "untracked_s": round(v["untracked_wall_median_s"], 2),
            **{
                vn: {
                    "overhead_pct": round(x["overhead_pct_median_paired"], 1),
                    "cpu_overhead_pct": round(x["cpu_overhead_pct_median_paired"], 1),
                    "tracker_own_pct": round(x["tracker_own_pct_of_untracked_median"], 1),
                    "tracker_own_s": {p: round(t, 2) for p, t in x["tracker_own_seconds_median"].items()},
                    "tracker_own_cpu_s": {p: round(t, 2) for p, t in x["tracker_own_cpu_seconds_median"].items()},
                    "values": x["metric_values_logged"],
                }
                for vn, x in v.items()
                if vn.startswith("tracked_")
            },
            "marginal_cpu_us_per_value": v.get("marginal_cpu_us_per_value"),
        }
        for k, v in results.items()
    }
    print(json.dumps({"one_time": {k: round(v, 2) for k, v in one_time.items()}, "cases": brief}, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
