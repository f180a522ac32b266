"""Sweep throughput: trials per minute with 1 and 2 local workers, and what PostgreSQL costs a trial.

1. **Workers.**  ``pinnlab sweep FILE --workers K --quiet --json`` as a user runs it (K = 1 runs in
   the command's own process, K = 2 in two spawned worker processes with cores / K TensorFlow
   threads each), on the local default storage (Optuna journal + MLflow SQLite, fresh per run,
   tracking on), for a grid sweep of small trials: ``seed-fixed`` for ``--steps`` steps over widths
   and learning rates.  K = 1 and K = 2 alternate for ``--repeats`` rounds.  Reported per run:

   * ``wall``: the command's wall time, process and TensorFlow start-up included;
   * ``steady``: from the first trial's start to the last trial's end (Optuna's timestamps), i.e.
     the trials alone;
   * trials per minute for both, and the ratio K = 2 / K = 1 (median over rounds).

2. **Storage overhead per trial.**  The real worker loop (``pinnlab.sweep.runner._work``: budget
   check, ``study.optimize(n_trials=1)`` with heartbeats on RDB storages, the objective's storage
   writes: worker, params, the result's ~20 user attributes) with the training replaced by a
   stored result, so that only storage time remains; ``--storage-trials`` trials per storage on
   the journal (the local default), SQLite and PostgreSQL (``$PINNLAB_TEST_POSTGRES_URL`` or a
   temporary cluster from the local binaries, see ``tests/postgres.py``; skipped without one).
   Reported: milliseconds per trial (median over 3 batches), and PostgreSQL minus journal; and
   the time of one ``gc.collect()`` in that process (it holds TensorFlow), which Optuna's
   ``gc_after_trial`` would add to every trial.

3. **Per-trial overhead**: (wall of 12 trials − wall of 3) / 9 of a 1-worker tracked
   sweep of 50-step trials, and from Optuna's timestamps of the 12-trial sweep (end of the last
   trial − end of the first) / 11, which the start-up's noise does not reach, each against
   ``python -c "import tensorflow"`` timed in the same round, for
   two sweeps: ``reuse`` (seed-fixed over learning rate and seed: every trial reuses the built
   trainer) and ``readme`` (sweeps/seed_divergence.yaml with 50 steps: activation, width,
   formulation and l2 change the graph, so most trials build and trace anew); also the README
   sweep's trials per minute.  ``--overhead-only`` measures just this (~10 min on 2 loaded cores).

Usage: ``python benchmarks/speed/throughput.py [--trials 40] [--steps 600] [--repeats 2] [--out FILE.json]``
(default output ``benchmarks/results/throughput.json``; ~8 minutes on 2 cores; more trials
amortise the workers' start-up further).  Run it with
nothing else using the CPU (the load average is recorded at start and at the end).
"""

from __future__ import annotations

import argparse
import gc
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


def sweep_file(directory: Path, trials: int, steps: int) -> Path:
    """A grid of ``trials`` points (widths x learning rates), every trial ``steps`` steps."""
    widths = [8, 12, 16, 20, 24, 32, 40, 48, 56, 64]
    n_rates = -(-trials // len(widths))
    rates = [round(1e-3 * (1.25**i), 6) for i in range(n_rates)]
    data = {
        "base": "seed-fixed",
        "overrides": {"training.steps": steps, "diagnostics.every": 100, "divergence.heldout_points": 256},
        "space": {"model.width": {"choices": widths}, "optimizer.learning_rate": {"choices": rates}},
        "objective": {"metric": "final_loss", "direction": "minimize"},
        "sampler": {"name": "grid"},
        "n_trials": trials,
        "study_name": "throughput",
    }
    import yaml

    path = directory / "throughput.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_sweep_command(path: Path, workers: int, directory: Path) -> dict:
    """One ``pinnlab sweep`` in a fresh store; wall and steady-state rates."""
    import optuna

    store = directory / f"store-{workers}-{time.monotonic_ns()}"
    journal = store / "optuna.journal"
    cmd = [
        sys.executable,
        "-m",
        "pinnlab",
        "sweep",
        str(path),
        "--workers",
        str(workers),
        "--quiet",
        "--json",
        "--storage",
        f"journal:{journal}",
        "--tracking-uri",
        f"sqlite:///{store / 'mlflow.db'}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PINNLAB_HOME", None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="throughput", storage=storage).get_trials()
    starts = [t.datetime_start for t in trials]
    ends = [t.datetime_complete for t in trials]
    steady = (max(ends) - min(starts)).total_seconds()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    # what each trial after the first adds, gaps between trials included; the first trial pays the
    # lazy imports (TensorFlow's among them), whose time varies by seconds from run to run
    after_first = (max(ends) - min(ends)).total_seconds() / max(len(trials) - 1, 1)
    n = report["done"]
    return {
        "workers": workers,
        "trials": n,
        "counts": report["counts"],
        "wall_seconds": round(wall, 2),
        "steady_seconds": round(steady, 2),
        "startup_seconds": round(wall - steady, 2),
        "trials_per_minute_wall": round(60 * n / wall, 2),
        "trials_per_minute_steady": round(60 * n / steady, 2),
        "trial_seconds_median": round(statistics.median(durations), 3),
        "per_trial_after_first_seconds": round(after_first, 3),
    }


def measure_workers(args, directory: Path) -> dict:
    path = sweep_file(directory, args.trials, args.steps)
    rounds = []
    for r in range(args.repeats):
        order = (1, 2) if r % 2 == 0 else (2, 1)
        runs = {k: run_sweep_command(path, k, directory) for k in order}
        for k in order:
            print(json.dumps({"round": r, **runs[k]}), file=sys.stderr)
        rounds.append(runs)

    def ratio(key):
        return round(statistics.median(rd[2][key] / rd[1][key] for rd in rounds), 3)

    return {
        "sweep": {
            "base": "seed-fixed",
            "trials": args.trials,
            "steps_per_trial": args.steps,
            "tracking": True,
            "storage": "journal + MLflow SQLite (the local default)",
        },
        "runs": [rd[k] for rd in rounds for k in (1, 2)],
        "speedup_2_over_1_wall": ratio("trials_per_minute_wall"),
        "speedup_2_over_1_steady": ratio("trials_per_minute_steady"),
    }


# ------------------------------------------------------------------------------ storage overhead
def storage_ms_per_trial(url: str, trials: int, summary: dict) -> list[float]:
    """Milliseconds per trial of the worker loop with training replaced by ``summary``."""
    from pinnlab.core.signals import Terminate
    from pinnlab.core.summary import TRIAL_ATTRS
    from pinnlab.sweep.objective import Objective
    from pinnlab.sweep.runner import _work
    from pinnlab.sweep.space import suggest
    from pinnlab.sweep.spec import SweepSpec
    from pinnlab.sweep.study import create_or_load_study, enqueue_slots, load_study

    class StorageOnly(Objective):
        def _run(self, trial):  # the storage calls of Objective._run, without the training
            suggest(trial, self.spec.space)
            trial.set_user_attr("mlflow_run_id", "0" * 32)
            for key in TRIAL_ATTRS:
                trial.set_user_attr(key, summary.get(key))
            trial.set_user_attr("warnings", summary["warnings"])
            return float(summary["final_loss"])

    batches = []
    for b in range(3):
        spec = SweepSpec.from_dict(
            {
                "base": "seed-fixed",
                "study_name": f"storage-{time.monotonic_ns()}-{b}",
                "n_trials": trials,
                "space": {
                    "model.width": {"low": 4, "high": 64},
                    "optimizer.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
                },
                "sampler": {"name": "tpe", "seed": b},
            }
        )
        create_or_load_study(spec, url)
        study, spec = load_study(spec.study_name, url)
        enqueue_slots(study, spec)
        objective = StorageOnly(spec, tracking_uri=None, experiment="x", parent_run_id=None, track=False)
        t0 = time.perf_counter()
        ran = _work(study, spec, url, objective, Terminate(), None)
        batches.append(1000 * (time.perf_counter() - t0) / ran)
    return batches


def measure_storage(args, directory: Path) -> dict:
    import optuna

    from pinnlab.config import load_config
    from pinnlab.training import Trainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summary = Trainer(load_config("seed-fixed", ["training.steps=20"])).fit().summary()
    urls = {"journal": f"journal:{directory / 'storage.journal'}", "sqlite": f"sqlite:///{directory / 'storage.db'}"}
    out = {"trials_per_batch": args.storage_trials, "sampler": "tpe (as the default sweeps)", "ms_per_trial": {}}
    sys.path.insert(0, str(ROOT))
    from tests import postgres

    try:
        with postgres.postgres_url() as pg:
            urls["postgresql"] = pg
            for name, url in urls.items():
                out["ms_per_trial"][name] = [
                    round(x, 2) for x in storage_ms_per_trial(url, args.storage_trials, summary)
                ]
                print(json.dumps({name: out["ms_per_trial"][name]}), file=sys.stderr)
    except postgres.Unavailable as exc:
        out["postgresql_skipped"] = str(exc)
        for name, url in urls.items():
            out["ms_per_trial"][name] = [round(x, 2) for x in storage_ms_per_trial(url, args.storage_trials, summary)]
    # what Optuna's gc_after_trial (which sweeps do not set) would add to every trial in a process
    # holding TensorFlow: a full collection, timed here after the runs above
    out["gc_collect_ms"] = [round(1000 * _timed(gc.collect), 1) for _ in range(5)]
    med = {k: round(statistics.median(v), 2) for k, v in out["ms_per_trial"].items()}
    out["median_ms_per_trial"] = med
    if "postgresql" in med:
        out["postgresql_minus_journal_ms"] = round(med["postgresql"] - med["journal"], 2)
    return out


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------ per-trial overhead
def overhead_sweep_file(directory: Path, kind: str, steps: int, trials: int) -> Path:
    """``readme``: sweeps/seed_divergence.yaml with ``steps`` steps per trial (its space: activation,
    width, formulation, l2, learning rate); ``reuse``: seed-fixed over learning rate and seed only
    (every trial after the first reuses the built trainer, :mod:`pinnlab.training.reuse`);
    ``readme_no_sharpness``: ``readme`` with ``diagnostics.sharpness: false`` (what the sharpness
    check at step 0 costs a short trial)."""
    import yaml

    if kind.startswith("readme"):
        data = yaml.safe_load((ROOT / "sweeps" / "seed_divergence.yaml").read_text())
        overrides = {k: v for k, v in data.get("overrides", {}).items() if k != "training.epochs"}
        data["overrides"] = {**overrides, "training.steps": steps}  # steps replace the file's epochs
        if kind == "readme_no_sharpness":
            data["overrides"]["diagnostics.sharpness"] = False
    else:
        data = {
            "base": "seed-fixed",
            "overrides": {"training.steps": steps},
            "space": {
                "optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
                "training.seed": {"low": 0, "high": 1000},
            },
            "objective": {"metric": "final_loss", "direction": "minimize"},
            "sampler": {"name": "tpe", "seed": 0},
        }
    data.update(n_trials=trials, study_name="throughput")
    path = directory / f"overhead-{kind}-{trials}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _tf_import_seconds() -> float:
    return _timed(lambda: subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, timeout=900))


def measure_trial_overhead(args, directory: Path) -> dict:
    """(wall of N trials - wall of 3) / (N - 3) for a 1-worker tracked sweep of ``--overhead-steps``
    steps per trial, against ``python -c "import tensorflow"`` timed in the same round."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_big = args.overhead_trials
    out: dict = {"steps_per_trial": args.overhead_steps, "trials": [3, n_big], "workers": 1, "tracking": True}
    for kind in ("reuse", "readme", "readme_no_sharpness"):
        rounds = []
        for _ in range(args.repeats):
            tf_import = _tf_import_seconds()
            small = run_sweep_command(overhead_sweep_file(directory, kind, args.overhead_steps, 3), 1, directory)
            big = run_sweep_command(overhead_sweep_file(directory, kind, args.overhead_steps, n_big), 1, directory)
            per_trial = (big["wall_seconds"] - small["wall_seconds"]) / (n_big - 3)
            rounds.append(
                {
                    "tf_import_seconds": round(tf_import, 2),
                    "wall_3": small["wall_seconds"],
                    f"wall_{n_big}": big["wall_seconds"],
                    "per_trial_seconds": round(per_trial, 3),
                    "per_trial_over_tf_import": round(per_trial / tf_import, 4),
                    "trials_per_minute_steady": big["trials_per_minute_steady"],
                    "trial_seconds_median": big["trial_seconds_median"],
                    # Optuna's start-to-complete time of the median trial: immune to the start-up noise
                    # that the difference of two command walls carries on a shared machine
                    "trial_median_over_tf_import": round(big["trial_seconds_median"] / tf_import, 4),
                    # (end of the last trial - end of the first) / (N - 1) of the larger sweep: the same
                    # per-trial cost without the start-up noise of two command walls (TensorFlow's import
                    # took 4-8 s from run to run in one sweep's first trial here)
                    "per_trial_after_first_seconds": big["per_trial_after_first_seconds"],
                    "per_trial_after_first_over_tf_import": round(big["per_trial_after_first_seconds"] / tf_import, 4),
                    "counts": big["counts"],
                }
            )
            print(json.dumps({kind: rounds[-1]}), file=sys.stderr)
        med = {k: statistics.median(rd[k] for rd in rounds) for k in rounds[0] if isinstance(rounds[0][k], float)}
        out[kind] = {
            "rounds": rounds,
            "median": med,
            "target_per_trial_over_tf_import": 0.07,
            "met": med["per_trial_over_tf_import"] <= 0.07,
            "met_after_first": med["per_trial_after_first_over_tf_import"] <= 0.07,
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40, help="trials per sweep (a grid of that many points)")
    ap.add_argument("--steps", type=int, default=600, help="training steps per trial")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of (1 worker, 2 workers), order alternating")
    ap.add_argument("--storage-trials", type=int, default=40, help="trials per storage-overhead batch")
    ap.add_argument("--overhead-trials", type=int, default=12, help="the larger sweep of the per-trial overhead")
    ap.add_argument("--overhead-steps", type=int, default=50, help="steps per trial of the per-trial overhead")
    ap.add_argument("--overhead-only", action="store_true", help="measure only the per-trial overhead")
    ap.add_argument(
        "--out",
        default=None,
        help="default: benchmarks/results/throughput.json "
        "(throughput-overhead.json with --overhead-only, so the full run's file is kept)",
    )
    args = ap.parse_args(argv)
    if args.out is None:
        name = "throughput-overhead.json" if args.overhead_only else "throughput.json"
        args.out = str(ROOT / "benchmarks" / "results" / name)

    from pinnlab.backend import import_tensorflow

    tf = import_tensorflow()
    env = environment(tensorflow=tf.__version__, uptime_start=_uptime())
    workers = storage = None
    with tempfile.TemporaryDirectory(prefix="pinnlab-throughput-") as tmp:
        overhead = measure_trial_overhead(args, Path(tmp))
        if not args.overhead_only:
            workers = measure_workers(args, Path(tmp))
            storage = measure_storage(args, Path(tmp))
    env["uptime_end"] = _uptime()
    env["loadavg_end"] = list(os.getloadavg())
    out = {
        "benchmark": "throughput",
        "command": "python benchmarks/speed/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": env,
        "per_trial_overhead": overhead,
        "workers": workers,
        "storage_overhead": storage,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_results(Path(args.out), out, env, indent=2)
    print(
        json.dumps(
            {
                "per_trial": {k: v["median"] for k, v in overhead.items() if isinstance(v, dict) and "median" in v},
                "speedup_2_over_1_wall": workers and workers["speedup_2_over_1_wall"],
                "median_ms_per_trial": storage and storage["median_ms_per_trial"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
