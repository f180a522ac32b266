"""Trainer overhead: pinnlab's compiled step and host loop against a minimal hand-written step.

Usage::

    python benchmarks/speed/trainer_overhead.py [--out FILE.json] [--steps N] [--repeats R] [--jit]

Compares, on the ``poisson2d`` preset (2 -> 3x50 tanh -> 1, 2000 interior + 400 boundary points,
full batch, Adam 1e-3, loss = mean((-Δu - f)²) + mean(u_b²)):

(a) ``Trainer.train_step`` (pinnlab's compiled step: losses, gradients, weight backup, update and the
    global norms it returns every step), called directly on the full-batch point dict; and
    ``Trainer.fit()``, i.e. the compiled step plus the host loop around it (``.numpy()``, finite
    check, history rows, divergence monitor) and the diagnostics every ``diagnostics.every`` steps;
(b) a hand-written ``tf.function`` step on the same network (same spec, weights copied), the same
    points and the same loss, with the Laplacian from two nested ``tf.GradientTape``\\ s looping over
    the two input coordinates (written out here; pinnlab.numerics.derivatives is not used).

Method
------
* Compile: the first call of each step function, split into tracing (``get_concrete_function``)
  and the first execution (graph optimisation / XLA compilation plus one step); for pinnlab also
  the first call of a second Trainer in the same process (AutoGraph's conversion of pinnlab's
  Python code is cached per process, so the first Trainer of a process pays it alone).
* Step time: ``--repeats`` rounds; each round runs a block of ``--block`` pinnlab steps and a block
  of hand-written steps, in alternating order (AB BA AB ...), each block ended by a ``.numpy()``
  that waits for its last result.  Reported per side: median, 10th percentile (contention only adds
  time, so a low quantile is the least disturbed estimate) and quartiles of the per-step time; the
  ratio pinnlab / hand-written of the medians, of the 10th percentiles, and the median of the
  per-round (paired) ratios; the same with process CPU time; and the CPU cores other processes
  used meanwhile (from /proc/stat, steal time included), per round and overall.
* fit(): two fresh trainers, ``diagnostics.every`` = 100 (the default) and 10**9 (only the step-0
  diagnostics run), each ``fit()`` ``--fit-rounds`` times in alternation with ``training.steps=N``.
  The trainer's public hooks ``train_step``, ``diagnose`` and ``update_ratio`` are wrapped (on the instance)
  with timers and a callback reads the clock at the end of every step, so each window of 100 steps
  (step 0, the compilation, excluded; at every=100 each window holds exactly one diagnostics call)
  splits into: the compiled step call, the diagnostics, and the rest = fit()'s host loop
  (``.numpy()``, finite check, history rows, divergence monitor, the callback itself).  Reported:
  median ms/step over the windows and the mean breakdown; the first fit's ``compile_seconds`` and
  ``wall_seconds``, and the naive (wall - compile) / (N - 1), which also bills the step-0
  diagnostics compilation and the end-of-run evaluation to the steps.

``--jit`` adds the same measurements with ``jit_compile=True`` (pinnlab: the override
``training.jit_compile=true``; hand-written: ``tf.function(jit_compile=True)``).

Note: ``Trainer`` enables TF op determinism (``training.deterministic`` defaults to true), which is
process-wide, so the hand-written step runs under it too; the JSON records it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks._env import environment, write_results  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pinnlab.config import load_config  # noqa: E402
from pinnlab.training.callbacks import Callback  # noqa: E402
from pinnlab.training.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "trainer_overhead.json"
PRESET = "poisson2d"
WINDOW = 100  # fit() timing window = the default diagnostics.every
HUGE_EVERY = 10**9
PARTS = ("total", "step_call", "diagnostics", "host_other")


# ----------------------------------------------------------------------------------------- helpers
def _stats(xs: list[float]) -> dict:
    xs = sorted(x for x in xs if not math.isnan(x))
    if not xs:
        return {"median": None, "n": 0}
    p10, q25, q75 = np.percentile(xs, [10, 25, 75])
    return {
        "median": statistics.median(xs),
        "min": xs[0],
        "max": xs[-1],
        "p10": float(p10),  # contention only ever adds time: a low quantile is the least disturbed
        "q25": float(q25),
        "q75": float(q75),
        "n": len(xs),
    }


def _env() -> dict:
    return environment(
        tensorflow=tf.__version__,
        keras=keras.__version__,
        numpy=np.__version__,
        cpu_affinity=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        gpus=len(tf.config.list_physical_devices("GPU")),
        tf_intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        tf_inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
    )


def _op_determinism() -> bool | None:
    try:
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return None


def _overrides(jit: bool, extra: list[str] = ()) -> list[str]:
    return [f"training.jit_compile={'true' if jit else 'false'}", *extra]


# ------------------------------------------------------------------------------- hand-written step
def make_hand_step(trainer: Trainer, jit: bool):
    """A fresh model of the trainer's spec with its weights, Adam, and a minimal compiled step."""
    cfg = trainer.cfg
    model = keras.models.clone_model(trainer.model)  # same layers, fresh variables
    model.set_weights(trainer.model.get_weights())
    variables = model.trainable_variables
    opt = keras.optimizers.Adam(learning_rate=cfg.optimizer.learning_rate)
    opt.build(variables)
    pi = math.pi

    @tf.function(jit_compile=jit)
    def step(x_int, x_bnd):
        cols = [x_int[:, i : i + 1] for i in range(2)]
        with tf.GradientTape() as tape:
            with tf.GradientTape(persistent=True) as outer:
                outer.watch(cols)
                with tf.GradientTape(persistent=True) as inner:
                    inner.watch(cols)
                    u = model(tf.concat(cols, axis=1))
                first = [inner.gradient(u, c) for c in cols]  # u_x, u_y
            lap = tf.add_n([outer.gradient(d, c) for d, c in zip(first, cols)])  # u_xx + u_yy
            f = 2 * pi**2 * tf.sin(pi * cols[0]) * tf.sin(pi * cols[1])
            loss = tf.reduce_mean(tf.square(-lap - f)) + tf.reduce_mean(tf.square(model(x_bnd)))
        grads = tape.gradient(loss, variables)
        opt.apply(grads, variables)
        return loss

    return step, model


# ------------------------------------------------------------------------------------ measurements
def _first_call(fn, *args) -> dict:
    """Tracing (Python -> graph) and the first execution (graph optimisation / XLA compile + 1 step)."""
    t = time.perf_counter()
    fn.get_concrete_function(*args)
    traced = time.perf_counter() - t
    t = time.perf_counter()
    fn(*args).numpy()
    first = time.perf_counter() - t
    return {"trace_seconds": traced, "first_call_seconds": first, "total_seconds": traced + first}


def _block(fn, args, n: int) -> tuple[float, float]:
    """Wall and process-CPU milliseconds per step of ``n`` back-to-back calls (last result awaited)."""
    c = time.process_time()
    t = time.perf_counter()
    for _ in range(n):
        out = fn(*args)
    out.numpy()
    wall = (time.perf_counter() - t) * 1e3 / n
    return wall, (time.process_time() - c) * 1e3 / n


class _CpuMeter:
    """Contention indicator: CPU cores busy with this process vs. with everything else (Linux)."""

    def __enter__(self):
        self._t, self._busy, self._own = time.perf_counter(), _busy_seconds(), time.process_time()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._t
        busy = _busy_seconds()
        own = (time.process_time() - self._own) / wall
        self.result = {"wall_seconds": wall, "own_cpu_cores": own}
        if busy is not None and self._busy is not None:
            self.result["other_processes_cpu_cores"] = max(0.0, (busy - self._busy) / wall - own)
        return False


def _busy_seconds() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure_steps(jit: bool, repeats: int, block: int, warmup: int) -> dict:
    trainer = Trainer(load_config(PRESET, _overrides(jit)))
    points = next(trainer.batches())
    assert set(points) == {"residual", "boundary"}, set(points)
    x_int, x_bnd = points["residual"], points["boundary"]
    hand, _ = make_hand_step(trainer, jit)

    compile_info = {"pinnlab": _first_call(trainer.train_step, points), "hand": _first_call(hand, x_int, x_bnd)}
    # A second Trainer in the same process: AutoGraph's conversion of pinnlab's Python code is
    # cached per process, so this is the trace/compile cost of every later run (e.g. in a sweep).
    second = Trainer(load_config(PRESET, _overrides(jit)))
    compile_info["pinnlab_second_trainer"] = _first_call(second.train_step, points)
    del second
    for _ in range(warmup):
        trainer.train_step(points)
        hand(x_int, x_bnd)

    runs = {"pinnlab": (trainer.train_step, (points,)), "hand": (hand, (x_int, x_bnd))}
    wall = {"pinnlab": [], "hand": []}
    cpu = {"pinnlab": [], "hand": []}
    other = []  # CPU cores used by other processes during each round
    with _CpuMeter() as meter:
        for r in range(repeats):
            with _CpuMeter() as round_meter:
                for name in ("pinnlab", "hand") if r % 2 == 0 else ("hand", "pinnlab"):
                    w, c = _block(*runs[name], block)
                    wall[name].append(w)
                    cpu[name].append(c)
            other.append(round_meter.result.get("other_processes_cpu_cores", math.nan))
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "jit_compile": jit,
        "points": {"residual": int(x_int.shape[0]), "boundary": int(x_bnd.shape[0])},
        "block_steps": block,
        "repeats": repeats,
        "compile": compile_info,
        "step_ms": {k: {**_stats(v), "per_round": v} for k, v in wall.items()},
        "step_cpu_ms": {k: {**_stats(v), "per_round": v} for k, v in cpu.items()},
        "ratio_of_medians": med["pinnlab"] / med["hand"],
        "ratio_paired": _stats([p / h for p, h in zip(wall["pinnlab"], wall["hand"])]),
        "ratio_of_p10": float(np.percentile(wall["pinnlab"], 10) / np.percentile(wall["hand"], 10)),
        "ratio_cpu_of_medians": med_cpu["pinnlab"] / med_cpu["hand"],
        "load": {**meter.result, "other_processes_cpu_cores_per_round": _stats(other)},
    }


class _Timed:
    """Wraps a callable and accumulates the wall time spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1


class _Clock(Callback):
    """At the end of every step: the time, and the time spent so far in the compiled step and in
    the diagnostics.  The rest of a step's time is fit()'s own host work."""

    def __init__(self, trainer: Trainer):
        # fit() looks these up on the instance, so wrapping them there times exactly its calls.
        self.step = trainer.train_step = _Timed(trainer.train_step)
        self.diag = trainer.diagnose = _Timed(trainer.diagnose)
        self.ratio = trainer.update_ratio = _Timed(trainer.update_ratio)
        self.rows: list[tuple[float, float, float, int]] = []

    def on_train_begin(self, trainer) -> None:
        self.begin = time.perf_counter()
        self.rows = []

    def on_step(self, step, metrics) -> None:
        self.rows.append(
            (time.perf_counter(), self.step.seconds, self.diag.seconds + self.ratio.seconds, self.diag.calls)
        )


def _windows(rows) -> list[dict]:
    """Per-step ms over windows (k*W, (k+1)*W] of steps; step 0 (compilation) excluded."""
    n = len(rows)
    edges = [k * WINDOW for k in range((n - 1) // WINDOW + 1)] if n - 1 >= WINDOW else [0, n - 1]
    out = []
    for a, b in zip(edges, edges[1:]):
        (t0, s0, d0, c0), (t1, s1, d1, c1) = rows[a], rows[b]
        k = b - a
        total, step, diag = (t1 - t0) * 1e3 / k, (s1 - s0) * 1e3 / k, (d1 - d0) * 1e3 / k
        out.append(
            {
                "total": total,
                "step_call": step,
                "diagnostics": diag,
                "host_other": total - step - diag,
                "diag_calls": c1 - c0,
            }
        )
    return out


def measure_fit(jit: bool, steps: int, rounds: int) -> dict:
    settings = {"every_100": 100, "every_huge": HUGE_EVERY}
    trainers, clocks = {}, {}
    for key, every in settings.items():
        cfg = load_config(PRESET, _overrides(jit, [f"training.steps={steps}", f"diagnostics.every={every}"]))
        trainers[key] = Trainer(cfg)
        clocks[key] = _Clock(trainers[key])
        trainers[key].callbacks.append(clocks[key])
    windows: dict[str, list[dict]] = {k: [] for k in settings}
    fits: dict[str, list[dict]] = {k: [] for k in settings}
    with _CpuMeter() as meter:
        for r in range(rounds):
            for key in list(settings) if r % 2 == 0 else list(reversed(settings)):
                clock = clocks[key]
                diag_calls0, diag_s0 = clock.diag.calls, clock.diag.seconds + clock.ratio.seconds
                res = trainers[key].fit()
                assert res.steps_run == steps, (res.outcome, res.reason)
                w = _windows(clock.rows)
                windows[key] += w
                t_first = clock.rows[0][0] - clock.begin
                fits[key].append(
                    {
                        "round": r,
                        "outcome": res.outcome,
                        "compile_seconds": res.compile_seconds,  # the step-0 call of the compiled step
                        "first_step_seconds": t_first,  # step 0 with its diagnostics (compiled too)
                        "wall_seconds": res.wall_seconds,  # incl. the end-of-run evaluation
                        "naive_ms_per_step": (res.wall_seconds - res.compile_seconds) * 1e3 / (steps - 1),
                        "steady_ms_per_step": (clock.rows[-1][0] - clock.rows[0][0]) * 1e3 / (steps - 1),
                        "diagnostics_calls": clock.diag.calls - diag_calls0,
                        "diagnostics_seconds": clock.diag.seconds + clock.ratio.seconds - diag_s0,
                        "windows": w,
                    }
                )
    out: dict = {"jit_compile": jit, "steps": steps, "rounds": rounds, "window_steps": WINDOW, "settings": {}}
    for key, every in settings.items():
        ws = windows[key]
        diag_windows = [x["diagnostics"] * WINDOW / x["diag_calls"] for x in ws if x["diag_calls"]]
        out["settings"][key] = {
            "diagnostics_every": every,
            "ms_per_step": _stats([x["total"] for x in ws]),
            "breakdown_mean_ms_per_step": {part: statistics.fmean(x[part] for x in ws) for part in PARTS},
            "breakdown_median_ms_per_step": {part: statistics.median(x[part] for x in ws) for part in PARTS},
            "ms_per_diagnostics_call": statistics.median(diag_windows) if diag_windows else None,
            "first_fit": {
                k: fits[key][0][k]
                for k in ("compile_seconds", "first_step_seconds", "wall_seconds", "naive_ms_per_step")
            },
            "fits": fits[key],
        }
    s100, sinf = out["settings"]["every_100"], out["settings"]["every_huge"]
    d100, dinf = s100["ms_per_step"]["median"], sinf["ms_per_step"]["median"]
    direct = s100["breakdown_mean_ms_per_step"]["diagnostics"]
    out["diagnostics_cost"] = {
        # measured inside the run: time in _diagnostics + _update_ratio, per step at every=100
        "direct_ms_per_step": direct,
        "direct_fraction_of_step_call": direct / s100["breakdown_mean_ms_per_step"]["step_call"],
        "ms_per_call": s100["ms_per_diagnostics_call"],
        # difference of the two runs' medians (sensitive to load drifting between runs)
        "difference_ms_per_step": d100 - dinf,
        "difference_fraction": (d100 - dinf) / dinf,
    }
    host = sinf["breakdown_mean_ms_per_step"]
    out["host_loop"] = {
        "ms_per_step": host["host_other"],
        "fraction_of_step_call": host["host_other"] / host["step_call"],
    }
    out["load"] = meter.result
    return out


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON file (default benchmarks/results/trainer_overhead.json)"
    )
    ap.add_argument("--steps", type=int, default=301, help="training.steps of each fit() (default 301: 3 windows)")
    ap.add_argument("--repeats", type=int, default=75, help="interleaved rounds of step blocks (default 75)")
    ap.add_argument("--block", type=int, default=2, help="steps per block (default 2: close pairs under drifting load)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps of each after compilation (default 5)")
    ap.add_argument("--fit-rounds", type=int, default=2, help="fit() calls per diagnostics setting (default 2)")
    ap.add_argument("--jit", action="store_true", help="also measure with jit_compile=True (XLA)")
    args = ap.parse_args(argv)
    if args.steps < 2 or args.repeats < 1 or args.block < 1 or args.fit_rounds < 1:
        ap.error("--steps must be >= 2, --repeats, --block and --fit-rounds >= 1")

    t_start = time.perf_counter()
    logging.getLogger("pinnlab").setLevel(logging.ERROR)  # "not converged" after 301 steps is expected
    env = _env()
    # Process-wide one-time initialisation (first tf.function, first XLA compile) must not be
    # billed to whichever step happens to be compiled first.
    tf.function(lambda x: x * 2.0)(tf.ones(2)).numpy()
    tf.function(lambda x: x * 2.0, jit_compile=True)(tf.ones(2)).numpy()

    modes = [False, True] if args.jit else [False]
    results: dict = {"steps": {}, "fit": {}}
    for jit in modes:
        key = "jit" if jit else "no_jit"
        print(f"[{key}] interleaved step blocks ...", file=sys.stderr, flush=True)
        results["steps"][key] = measure_steps(jit, args.repeats, args.block, args.warmup)
        print(f"[{key}] fit() with diagnostics.every=100 and 10**9 ...", file=sys.stderr, flush=True)
        results["fit"][key] = measure_fit(jit, args.steps, args.fit_rounds)

    env["op_determinism"] = _op_determinism()
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    doc = {
        "benchmark": "trainer_overhead",
        "command": "python benchmarks/speed/trainer_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "preset": PRESET,
        "problem": "poisson2d: -Δu = 2π² sin(πx) sin(πy) on [0,1]², u = 0 on the boundary",
        "model": "2 -> 3x50 tanh -> 1 (glorot_normal), float32",
        "optimizer": "Adam(1e-3)",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": env,
        **results,
        "total_seconds": time.perf_counter() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, doc, doc["environment"], indent=2)

    for key in results["steps"]:
        s, f = results["steps"][key], results["fit"][key]
        st, c = f["settings"], s["compile"]
        p, h = s["step_ms"]["pinnlab"]["median"], s["step_ms"]["hand"]["median"]
        print(
            f"{key:6s} step  pinnlab {p:.2f} ms | hand {h:.2f} ms"
            f" | ratio {s['ratio_of_medians']:.3f} (paired {s['ratio_paired']['median']:.3f},"
            f" p10 {s['ratio_of_p10']:.3f},"
            f" cpu {s['ratio_cpu_of_medians']:.3f})"
            f" | first call pinnlab {c['pinnlab']['total_seconds']:.2f} s (2nd trainer"
            f" {c['pinnlab_second_trainer']['total_seconds']:.2f} s), hand {c['hand']['total_seconds']:.2f} s"
        )
        print(
            f"{key:6s} fit   every=100 {st['every_100']['ms_per_step']['median']:.2f} ms/step"
            f" | every=1e9 {st['every_huge']['ms_per_step']['median']:.2f} ms/step"
            f" | diagnostics {f['diagnostics_cost']['direct_ms_per_step']:.2f} ms/step"
            f" ({f['diagnostics_cost']['ms_per_call'] or float('nan'):.0f} ms/call)"
            f" | host loop {f['host_loop']['ms_per_step']:.3f} ms/step"
            f" | other processes {s['load'].get('other_processes_cpu_cores', float('nan')):.2f}"
            f"/{f['load'].get('other_processes_cpu_cores', float('nan')):.2f} cores"
        )
    print(f"wrote {args.out} in {doc['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
