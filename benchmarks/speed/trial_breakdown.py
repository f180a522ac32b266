"""Where a sweep trial's time goes: timers around the parts of a trial, in one in-process sweep.

Usage::

    python benchmarks/speed/trial_breakdown.py [--trials 12] [--steps 50] [--rounds 2] [--out FILE.json]

Method: the README sweep (sweeps/seed_divergence.yaml, its ``training.epochs`` replaced by
``--steps`` steps, as ``benchmarks/speed/throughput.py``'s ``readme`` kind) run by ``pinnlab sweep FILE
--quiet --json`` in this process (1 worker, tracked, a fresh local store), with and without
``diagnostics.sharpness``, alternating for ``--rounds`` rounds.  TensorFlow is imported before the
timers start.  Wrapped (wall seconds per call, median over the trials after the first): the trial
(``run_config``), ``build_trainer``, ``Trainer.fit``, the training loop, the periodic diagnostics
(at step 0 in a 50-step trial) and within them the sharpness check, the end of run
(``Recorder.finish``, with the held-out residual), the MLflow run's start and end writes, and the
step's trace and first call (``compile_seconds`` of the run).  The loop minus the diagnostics and
the first step is the other steps, the update ratio and the recorder.  Also per sweep: which
functions were traced, how often, and the seconds of those traces (``traces``; the Python trace and
graph building, not the first execution that the step's timer includes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._env import environment, write_results  # noqa: E402
from benchmarks.speed.throughput import overhead_sweep_file  # noqa: E402


def _timers():
    """Wrap the parts of a trial; returns {part: [seconds per call]}."""
    import pinnlab.runs as runs
    import pinnlab.sweep.objective as objective
    import pinnlab.tracking.writer as writer
    import pinnlab.training as training
    from pinnlab.training import diagnostics, loops, recorder, sharpness, trainer

    times: dict[str, list[float]] = {}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times.setdefault(key, []).append(time.perf_counter() - t0)

        return wrapper

    fit = trainer.Trainer.fit

    def fit_and_first_step(self):
        result = fit(self)
        times.setdefault("step_trace_and_first_call", []).append(result.compile_seconds)
        return result

    trainer.Trainer.fit = fit_and_first_step
    for owner, name, key in [
        (sharpness.Sharpness, "__call__", "sharpness_check"),
        (diagnostics.Diagnostics, "__call__", "diagnostics"),
        (loops.FirstOrderLoop, "run", "loop"),
        (recorder.Recorder, "finish", "end_of_run"),
        (trainer.Trainer, "fit", "fit"),
        (writer.RunTracker, "start", "mlflow_start"),
        (writer.RunTracker, "on_train_end", "mlflow_end"),
        (training, "build_trainer", "build_trainer"),
    ]:
        setattr(owner, name, timed(key, getattr(owner, name)))
    objective.run_config = timed("trial", runs.run_config)
    return times


def _trace_log() -> dict[str, list[float]]:
    """{traced function's name: [seconds of each trace]} from here on (TensorFlow's private
    ``tracing_compilation._create_concrete_function``, which every ``tf.function`` trace goes
    through: the Python trace and graph building, not the graph's first execution); empty when that
    name is not there."""
    from tensorflow.python.eager.polymorphic_function import tracing_compilation as tc

    log: dict[str, list[float]] = {}
    create = getattr(tc, "_create_concrete_function", None)
    if create is None:
        return log

    def logged(function_type, type_context, func_graph, tracing_options):
        t0 = time.perf_counter()
        try:
            return create(function_type, type_context, func_graph, tracing_options)
        finally:
            log.setdefault(str(tracing_options.name), []).append(time.perf_counter() - t0)

    tc._create_concrete_function = logged
    return log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "trial_breakdown.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env = environment()
    from pinnlab.backend import import_tensorflow

    import_tensorflow()
    times = _timers()
    traces = _trace_log()
    from pinnlab.cli import main as cli

    out: dict = {kind: [] for kind in ("readme", "readme_no_sharpness")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            kinds = list(out) if r % 2 == 0 else list(reversed(out))
            for kind in kinds:
                path = overhead_sweep_file(Path(tmp), kind, args.steps, args.trials)
                store = Path(tmp) / f"store-{kind}-{r}"
                times.clear()
                traces.clear()
                t0 = time.perf_counter()
                rc = cli(
                    [
                        "sweep",
                        str(path),
                        "--quiet",
                        "--json",
                        "--storage",
                        f"journal:{store / 'optuna.journal'}",
                        "--tracking-uri",
                        f"sqlite:///{store / 'mlflow.db'}",
                    ]
                )
                wall = time.perf_counter() - t0
                if rc not in (0, None):
                    raise RuntimeError(f"pinnlab sweep {path} exited {rc}")
                row = {"round": r, "sweep_wall_seconds": round(wall, 2)}
                row.update({k: round(statistics.median(v[1:] or v), 4) for k, v in sorted(times.items())})
                row["traces"] = {k: {"count": len(v), "seconds": round(sum(v), 3)} for k, v in sorted(traces.items())}
                out[kind].append(row)
                print(json.dumps({kind: row}), file=sys.stderr)
    med = {
        kind: {k: round(statistics.median(row[k] for row in rows), 4) for k in rows[0] if k not in ("round", "traces")}
        for kind, rows in out.items()
    }
    result = {
        "environment": {**env, "loadavg_end": list(os.getloadavg())},
        "trials": args.trials,
        "steps": args.steps,
        "median": med,
        "rounds": out,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result, env, indent=2)
    print(json.dumps(med, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
