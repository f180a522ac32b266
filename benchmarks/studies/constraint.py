"""Divergence as an Optuna constraint: how many trials does TPE waste on divergent settings?

A sweep trial that diverges is PRUNED and carries the constraint ``divergence`` > 0
(:mod:`pinnlab.sweep.objective`); TPE (Optuna >= 5) counts such a trial as infeasible and ranks it
after every feasible one.  Without the constraint TPE ranks a pruned trial by the last value it
reported before it ran away, which can look good.  This benchmark runs the README's sweep
(``sweeps/seed_divergence.yaml``: the seed problem's activation, width, formulation, L2 and learning
rate) in optimise mode (``sampler: tpe``) twice per sampler seed, one worker, no MLflow:

* ``constraint``: as pinnlab runs it;
* ``no_constraint``: the same command with ``optuna.trial.Trial.set_constraint`` made a no-op in the
  worker process (the sweep as it ran before the constraint existed).

Per arm and seed it records the divergent trials (``Outcome.divergent``) in all and after TPE's
random start-up (Optuna's ``n_startup_trials``, 10), and the best value among trials that worked.
The figure compared is the divergent trials after start-up ("wasted": TPE chose them), summed over
the seeds.

Usage: ``python benchmarks/studies/constraint.py [--seeds 0 1 2] [--n-trials 40] [--out benchmarks/results/constraint.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._env import environment, write_results  # noqa: E402

SWEEP = ROOT / "sweeps" / "seed_divergence.yaml"
STARTUP = 10  # optuna.samplers.TPESampler's n_startup_trials default
ARMS = ("constraint", "no_constraint")
# the worker of the no-constraint arm: pinnlab's CLI with Trial.set_constraint disabled
NO_CONSTRAINT = (
    "import sys, optuna; optuna.trial.Trial.set_constraint = lambda self, key, value: None; "
    "from pinnlab.cli import main; sys.exit(main(sys.argv[1:]))"
)


def sweep_file(workdir: Path, seed: int, n_trials: int) -> Path:
    """The README sweep in optimise mode: TPE with ``seed``, ``n_trials`` trials."""
    import yaml

    spec = yaml.safe_load(SWEEP.read_text())
    spec.update(sampler={"name": "tpe", "seed": seed}, n_trials=n_trials, study_name=f"constraint-{seed}")
    path = workdir / f"tpe-{seed}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(arm: str, seed: int, n_trials: int, workdir: Path) -> dict:
    """One sweep command of ``arm``; its trials' outcomes in trial order and the wall time."""
    import optuna

    from pinnlab.core.outcomes import Outcome

    journal = workdir / f"{arm}-{seed}.journal"
    args = [
        "sweep",
        str(sweep_file(workdir, seed, n_trials)),
        "--storage",
        f"journal:{journal}",
        "--no-track",
        "--json",
        "--quiet",
    ]
    cmd = (
        [sys.executable, "-m", "pinnlab.cli", *args]
        if arm == "constraint"
        else [sys.executable, "-c", NO_CONSTRAINT, *args]
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=7200
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{arm} seed {seed} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = sorted(
        optuna.load_study(study_name=f"constraint-{seed}", storage=storage).get_trials(), key=lambda t: t.number
    )
    outcomes = [Outcome.parse(t.user_attrs.get("outcome")) for t in trials]
    divergent = [o is not None and o.divergent for o in outcomes]
    worked = [t.value for t, o in zip(trials, outcomes) if o is not None and o.worked and t.value is not None]
    return {
        "wall": round(wall, 1),
        "trials": len(trials),
        "divergent": sum(divergent),
        "divergent_after_startup": sum(divergent[STARTUP:]),
        "best_worked_value": min(worked) if worked else None,
        "constraints_set": sum(bool(t.constraints) for t in trials),
        "outcomes": [str(o) if o is not None else None for o in outcomes],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-trials", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "constraint.json")
    args = ap.parse_args(argv)
    env = environment()
    results: dict = {arm: {} for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm in ARMS if seed % 2 == 0 else reversed(ARMS):  # alternate the order (shared machine)
                results[arm][str(seed)] = r = run(arm, seed, args.n_trials, Path(tmp))
                print(
                    f"seed {seed} {arm}: {r['divergent']} divergent, {r['divergent_after_startup']} after start-up, "
                    f"best {r['best_worked_value']}, {r['wall']} s",
                    flush=True,
                )
    totals = {
        arm: {
            key: sum(r[key] for r in results[arm].values())
            for key in ("divergent", "divergent_after_startup", "trials")
        }
        for arm in ARMS
    }
    after = [results[ARMS[0]][str(s)]["trials"] - STARTUP for s in args.seeds]
    out = {
        "environment": {**env, "loadavg_end": list(os.getloadavg())},
        "sweep": str(SWEEP.relative_to(ROOT)),
        "sampler": "tpe",
        "n_trials": args.n_trials,
        "startup_trials": STARTUP,
        "seeds": args.seeds,
        "totals": totals,
        "wasted_share": {arm: round(totals[arm]["divergent_after_startup"] / max(sum(after), 1), 3) for arm in ARMS},
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, out, env, indent=1)
    print(json.dumps({"totals": totals, "wasted_share": out["wasted_share"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
