"""Start-up overhead: where the seconds of a run go that are not training.

Measured, each in a fresh interpreter (the way a user pays them), ``--repeats`` times interleaved
so that the machine's load (2 shared cores) hits every quantity alike; medians are reported and
every ratio is taken within one round before its median:

* ``imports``: ``import X`` alone for tensorflow, keras, mlflow, optuna, pinnlab.config and
  pinnlab.training (the last two must stay light: validation never waits for TensorFlow);
* ``phases``: one in-process ``pinnlab run seed`` cut into phases with ``time.perf_counter``:
  import pinnlab.config, config validation, TensorFlow (through :mod:`pinnlab.backend`), the rest
  of the training modules (keras, ...), model build (``Trainer(...)``), tracing (the first step),
  training, end-of-run evaluation (relative error and held-out residual), and, tracked: MLflow
  import, run start, end-of-run writes and the PNG plots;
* ``cli``: the command lines themselves: ``pinnlab run seed --set model.activation=rleu`` (a bad
  value: must exit 2 quickly), ``pinnlab run seed --no-track --json`` and the tracked run, each
  against ``python -c "import tensorflow"`` measured in the same round.

The target ratios (docs/benchmarks.md) are in ``targets`` (value, limit, met).

Usage: ``python benchmarks/speed/startup.py [--repeats 3] [--out benchmarks/results/startup.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._env import environment, write_results  # noqa: E402

MODULES = ["tensorflow", "keras", "mlflow", "optuna", "pinnlab.config", "pinnlab.training"]

PHASES = r"""
import json, sys, time
t = time.perf_counter
out = {}
a = t(); import pinnlab.config; out["import_pinnlab_config"] = t() - a
a = t(); cfg = pinnlab.config.load_config("seed"); out["config_validation"] = t() - a
a = t()
from pinnlab.backend import import_tensorflow
import_tensorflow(); out["import_tensorflow"] = t() - a
a = t(); from pinnlab.training import Trainer; out["import_training_modules"] = t() - a
track = sys.argv[1] == "tracked"
cbs = []
tracker = None
if track:
    a = t(); import pinnlab.tracking.writer as w; out["import_mlflow_tracking"] = t() - a
    import pinnlab.plots as plots
    orig = plots.plot_history
    def timed(*args, **kw):
        b = t(); r = orig(*args, **kw); out["plots"] = out.get("plots", 0.0) + t() - b; return r
    plots.plot_history = timed
    a = t()
    tracker = w.RunTracker(cfg, tracking_uri=sys.argv[2], experiment="startup", run_name="seed")
    tracker.__enter__(); out["tracking_start"] = t() - a
    cbs = [tracker]
a = t(); trainer = Trainer(cfg, cbs); out["model_build"] = t() - a
ev = {"s": 0.0}
for name in ("rel_l2_error", "heldout_residual"):
    f = getattr(trainer, name)
    def wrap(f=f):
        b = t(); r = f(); ev["s"] += t() - b; return r
    setattr(trainer, name, wrap)
end = {"s": 0.0}
if tracker is not None:
    orig_end = tracker.on_train_end
    def on_end(result):
        b = t(); orig_end(result); end["s"] += t() - b
    tracker.on_train_end = on_end
a = t(); result = trainer.fit(); fit = t() - a
out["tracing_first_step"] = result.compile_seconds
out["evaluation"] = ev["s"]
out["training"] = fit - result.compile_seconds - ev["s"] - end["s"]
if tracker is not None:
    out["tracking_end_of_run"] = end["s"] - out.get("plots", 0.0)
    a = t(); tracker.__exit__(None, None, None); out["tracking_close"] = t() - a
out["steps_run"] = result.steps_run
print(json.dumps(out))
"""


def _py(args: list[str], env=None) -> tuple[float, subprocess.CompletedProcess]:
    a = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    return time.perf_counter() - a, proc


def _import_time(module: str) -> float:
    code = f"import time; a = time.perf_counter(); import {module}; print(time.perf_counter() - a)"
    _, proc = _py(["-c", code])
    return float(proc.stdout.strip().splitlines()[-1])


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def one_round(store: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PINNLAB_HOME": str(store)}
    r: dict = {"imports": {m: _import_time(m) for m in MODULES}}
    tf_wall, _ = _py(["-c", "import tensorflow"])
    r["tf_import_wall"] = tf_wall
    bad_wall, bad = _py(["-m", "pinnlab.cli", "run", "seed", "--set", "model.activation=rleu"], env)
    r["bad_set"] = {"wall": bad_wall, "exit": bad.returncode, "stderr_lines": len(bad.stderr.strip().splitlines())}
    for label, extra in (("untracked", ["--no-track"]), ("tracked", [])):
        wall, proc = _py(["-m", "pinnlab.cli", "run", "seed", "--json", "--quiet", *extra], env)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        r[f"cli_{label}"] = {
            "wall": wall,
            "wall_seconds": summary["wall_seconds"],
            "overhead": wall - summary["wall_seconds"],
            "stderr": proc.stderr.strip().splitlines()[:6],
        }
    uri = f"sqlite:///{store}/phases.db"
    for label in ("untracked", "tracked"):
        _, proc = _py(["-c", PHASES, label, uri], env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        r[f"phases_{label}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    r["ratios"] = {
        "bad_set_over_tf_import": bad_wall / tf_wall,
        "untracked_overhead_over_tf_import": r["cli_untracked"]["overhead"] / tf_wall,
        "tracked_overhead_over_tf_import": r["cli_tracked"]["overhead"] / tf_wall,
    }
    return r


def _median_tree(rounds: list):
    first = rounds[0]
    if isinstance(first, dict):
        return {k: _median_tree([r[k] for r in rounds if k in r]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(rounds)
    return first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/startup.json"))
    args = ap.parse_args()
    env = environment(uptime_start=_uptime())
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            rounds.append(one_round(Path(tmp) / f"r{i}"))
            print(json.dumps(rounds[-1]["ratios"]), file=sys.stderr)
    med = _median_tree(rounds)
    ratios = med["ratios"]
    targets = {
        "bad_set_over_tf_import": {"value": ratios["bad_set_over_tf_import"], "limit": 0.35},
        "untracked_overhead_over_tf_import": {"value": ratios["untracked_overhead_over_tf_import"], "limit": 1.25},
    }
    for t in targets.values():
        t["met"] = t["value"] <= t["limit"]
    env["uptime_end"] = _uptime()
    env["loadavg_end"] = list(os.getloadavg())
    out = {"environment": env, "median": med, "targets": targets, "rounds": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_results(Path(args.out), out, env, indent=2)
    print(json.dumps({"targets": targets, "phases_tracked": med["phases_tracked"]}, indent=2))


if __name__ == "__main__":
    main()
