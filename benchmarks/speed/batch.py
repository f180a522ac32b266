"""Batched against unbatched sweeps: trials per minute, and every trial's outcome compared.

For each sweep file (default: the README's ``sweeps/seed_divergence.yaml``, ``sweeps/seed_boundary.yaml``
and the 32-trial learning-rate x seed grid ``sweeps/lr_seed_grid.yaml``) and each batch size
(default 1 and 8), run ``pinnlab sweep FILE --batch B`` as a command (one worker, fresh journal
and MLflow SQLite stores in a temporary directory) and record

* ``wall``: the command's wall time; ``trials_per_minute`` = trials / wall x 60;
* the per-trial identity check: for every parameter set the unbatched study ran, the batched
  study's trial with those parameters has the same state, outcome, NaN onset, divergence step and
  first non-finite tensor (``identical``), and their objective values' largest relative difference.

The batch sizes run in alternating order over ``--repeats`` rounds (the machine is shared); the
identity check uses the first round.  A sweep's ``speedup`` is the median wall at batch 1 over the
median wall at the larger batch.

Usage: ``python benchmarks/speed/batch.py [--sweeps readme boundary grid] [--batches 1 8] [--repeats 1]
[--out benchmarks/results/batch.json]``.
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

SWEEPS = {
    "readme": "sweeps/seed_divergence.yaml",
    "boundary": "sweeps/seed_boundary.yaml",
    "grid": "sweeps/lr_seed_grid.yaml",
}
KEYS = ("outcome", "nan_onset_step", "divergence_step", "first_nonfinite")


def run(sweep: str, batch: int, workdir: Path) -> dict:
    """One ``pinnlab sweep`` command; its wall time, report and trials keyed by parameters."""
    import optuna

    journal = workdir / "optuna.journal"
    cmd = [
        sys.executable,
        "-m",
        "pinnlab.cli",
        "sweep",
        str(ROOT / SWEEPS[sweep]),
        "--batch",
        str(batch),
        "--storage",
        f"journal:{journal}",
        "--tracking-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--json",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=report["study_name"], storage=storage)
    trials = {
        json.dumps(t.params, sort_keys=True): {
            "state": t.state.name,
            "value": t.value,
            **{k: t.user_attrs.get(k) for k in KEYS},
            "stacked_with": len(t.user_attrs.get("stacked_with") or [t.number]),
        }
        for t in study.get_trials()
        if t.state.is_finished() and not t.user_attrs.get("surplus")
    }
    return {
        "wall": round(wall, 2),
        "trials": len(trials),
        "trials_per_minute": round(60 * len(trials) / wall, 2),
        "outcomes": report["outcomes"],
        "by_params": trials,
    }


def compare(alone: dict, batched: dict) -> dict:
    """Per parameter set: does the batched trial end as the unbatched one?"""
    differ, rel = [], 0.0
    for params, a in alone["by_params"].items():
        b = batched["by_params"].get(params)
        if b is None or any(a[k] != b[k] for k in ("state", *KEYS)):
            differ.append({"params": params, "alone": a, "batched": b})
            continue
        if a["value"] is not None and b["value"] is not None:
            rel = max(rel, abs(a["value"] - b["value"]) / max(abs(a["value"]), 1e-30))
    return {
        "identical": not differ,
        "differ": differ,
        "max_rel_value_diff": rel,
        "same_parameter_sets": alone["by_params"].keys() == batched["by_params"].keys(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/batch.json"))
    args = ap.parse_args()
    out = {"environment": environment(), "sweeps": {}}
    for sweep in args.sweeps:
        rounds: dict[int, list[dict]] = {b: [] for b in args.batches}
        for r in range(args.repeats):
            for b in args.batches if r % 2 == 0 else list(reversed(args.batches)):
                with tempfile.TemporaryDirectory(prefix=f"pinnlab-batch-{sweep}-") as tmp:
                    rounds[b].append(run(sweep, b, Path(tmp)))
                res = rounds[b][-1]
                print(
                    json.dumps(
                        {"sweep": sweep, "batch": b, "wall": res["wall"], "trials_per_minute": res["trials_per_minute"]}
                    ),
                    file=sys.stderr,
                    flush=True,
                )
        base = args.batches[0]
        row = {"file": SWEEPS[sweep]}
        for b in args.batches:
            walls = [x["wall"] for x in rounds[b]]
            first = rounds[b][0]
            row[str(b)] = {
                "wall_median": statistics.median(walls),
                "walls": walls,
                "trials": first["trials"],
                "trials_per_minute": round(60 * first["trials"] / statistics.median(walls), 2),
                "outcomes": first["outcomes"],
                "largest_stacked_group": max(t["stacked_with"] for t in first["by_params"].values()),
            }
            if b != base:
                row[str(b)]["speedup"] = round(row[str(base)]["wall_median"] / row[str(b)]["wall_median"], 3)
                row[str(b)]["against_batch_" + str(base)] = compare(rounds[base][0], first)
        out["sweeps"][sweep] = row
    out["environment"]["loadavg_end"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_results(Path(args.out), out, out["environment"], indent=2)
    print(
        json.dumps(
            {
                s: {
                    b: {k: v.get(k) for k in ("wall_median", "trials_per_minute", "speedup")}
                    for b, v in row.items()
                    if b != "file"
                }
                for s, row in out["sweeps"].items()
            }
        )
    )


if __name__ == "__main__":
    main()
