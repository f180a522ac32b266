"""Running a sweep: local worker processes, resumption, and a live progress line.

``run_sweep`` creates (or resumes) the study and its MLflow parent run, then starts ``workers``
processes on this machine.  Each worker joins the study through the storage (exactly as a worker
on another machine would), runs its share of the remaining trials, and exits.  The parent process
imports no TensorFlow; it watches the storage and prints one progress line: trials done / total,
stable vs divergent, best value, ETA.

Threads: TensorFlow would give every process all cores; with K workers on C cores each worker gets
``max(1, C // K)`` intra-op threads and one inter-op thread, set before TensorFlow starts.

Resuming: the budget is ``n_trials`` finished trials (COMPLETE, PRUNED or FAIL).  Running the same
command again runs only what is missing; a finished study is reported, not redone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pinnlab.sweep.study import (
    FINISHED_STATES,
    PARENT_ATTR,
    create_or_load_study,
    default_storage_url,
    enqueue_grid,
    load_study,
)
from pinnlab.sweep.spec import SweepSpec

__all__ = ["run_sweep", "run_worker", "SweepReport", "study_report"]

DIVERGENT = {"nan", "blowup", "unbounded"}


@dataclass
class SweepReport:
    study_name: str
    storage: str
    tracking_uri: str | None
    parent_run_id: str | None
    n_trials: int
    counts: dict[str, int] = field(default_factory=dict)  # by Optuna state
    outcomes: dict[str, int] = field(default_factory=dict)  # by pinnlab outcome
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    ran_now: int = 0
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def study_report(study, spec: SweepSpec, storage: str, tracking_uri: str | None) -> SweepReport:
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
        o = t.user_attrs.get("outcome") or ("crash" if t.state.name == "FAIL" else None)
        if o:
            outcomes[o] = outcomes.get(o, 0) + 1
    best = None
    try:
        best = study.best_trial
    except ValueError:
        pass
    return SweepReport(
        study_name=spec.study_name,
        storage=storage,
        tracking_uri=tracking_uri,
        parent_run_id=study.user_attrs.get(PARENT_ATTR),
        n_trials=spec.n_trials,
        counts=counts,
        outcomes=outcomes,
        best_value=None if best is None else best.value,
        best_params=None if best is None else best.params,
    )


def _limit_threads(threads: int) -> None:
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its setting
        pass


def run_worker(
    study_name: str,
    storage: str,
    *,
    tracking_uri: str | None,
    n_trials: int | None = None,
    worker: int = 0,
    threads: int | None = None,
    track: bool = True,
) -> int:
    """Join a study and run trials until the study's budget (or ``n_trials`` here) is spent.

    Returns the number of trials this worker ran.  Usable from any machine that reaches the
    storage (``pinnlab worker`` calls it).
    """
    import logging

    import optuna
    from optuna.study import MaxTrialsCallback

    if threads:
        _limit_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("pinnlab").setLevel(logging.ERROR)  # per-trial warnings are in the trial's attrs
    from pinnlab.sweep.objective import Objective

    study, spec = load_study(study_name, storage, worker)
    remaining = spec.n_trials - len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    quota = remaining if n_trials is None else min(n_trials, remaining)
    if quota <= 0:
        return 0
    experiment = spec.experiment or spec.study_name
    objective = Objective(
        spec,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent_run_id=study.user_attrs.get(PARENT_ATTR),
        track=track,
    )
    before = len(study.get_trials(deepcopy=False))
    study.optimize(
        objective,
        n_trials=quota,
        catch=(Exception,),
        callbacks=[MaxTrialsCallback(spec.n_trials, states=FINISHED_STATES)],
        gc_after_trial=True,
    )
    return len(study.get_trials(deepcopy=False)) - before


def _worker_entry(kwargs: dict) -> None:
    run_worker(**kwargs)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_sweep(
    spec: SweepSpec,
    *,
    workers: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    progress: bool = True,
    poll_seconds: float = 1.0,
) -> SweepReport:
    """Create or resume the study of ``spec`` and run its missing trials with local workers."""
    from pinnlab.tracking import default_store, end_run, resolve_tracking_uri, start_parent_run

    t0 = time.time()
    storage = storage or default_storage_url(default_store())
    tracking_uri = resolve_tracking_uri(tracking_uri) if track else None
    study = create_or_load_study(spec, storage)
    done = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    remaining = max(0, spec.n_trials - done)
    parent = study.user_attrs.get(PARENT_ATTR)
    experiment = spec.experiment or spec.study_name
    if track and parent is None:
        parent = start_parent_run(
            tracking_uri,
            experiment,
            run_name=spec.study_name,
            tags={"study": spec.study_name, "pinnlab.kind": "study", "storage": storage},
            params={"n_trials": spec.n_trials, "sampler": spec.sampler.name, "objective": spec.objective.metric,
                    "space": ",".join(spec.space)},
        )
        study.set_user_attr(PARENT_ATTR, parent)
    if remaining == 0:
        report = study_report(study, spec, storage, tracking_uri)
        report.wall_seconds = time.time() - t0
        return report
    enqueue_grid(study, spec)
    workers = max(1, min(workers, remaining))
    status = "FINISHED"
    try:
        if workers == 1 and not progress:
            # one worker and no progress line to draw: run in this process (no second TF start-up)
            run_worker(spec.study_name, storage, tracking_uri=tracking_uri, n_trials=remaining, track=track)
        else:
            _run_processes(study, spec, storage, tracking_uri, track, workers, remaining, done, progress, poll_seconds)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if track:
            end_run(tracking_uri, parent, status)
    report = study_report(study, spec, storage, tracking_uri)
    report.ran_now = len(study.get_trials(deepcopy=False, states=FINISHED_STATES)) - done
    report.wall_seconds = time.time() - t0
    return report


def _run_processes(study, spec, storage, tracking_uri, track, workers, remaining, done, progress, poll_seconds):
    """Start ``workers`` spawned processes with their share of the trials; watch until they end."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    procs = []
    for i, quota in enumerate(_split(remaining, workers)):
        kwargs = dict(
            study_name=spec.study_name,
            storage=storage,
            tracking_uri=tracking_uri,
            n_trials=quota,
            worker=i,
            threads=threads,
            track=track,
        )
        p = ctx.Process(target=_worker_entry, args=(kwargs,), name=f"pinnlab-worker-{i}", daemon=False)
        p.start()
        procs.append(p)
    try:
        _watch(study, spec, procs, done, progress, poll_seconds)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        raise


def _watch(study, spec, procs, done_before, progress, poll_seconds) -> None:
    """Poll the storage while the workers run; one live progress line on stderr."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=spec.n_trials,
        initial=done_before,
        desc=spec.study_name,
        unit="trial",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    last = done_before
    while True:
        alive = any(p.is_alive() for p in procs)
        trials = study.get_trials(deepcopy=False, states=FINISHED_STATES)
        n = len(trials)
        if n != last:
            bar.update(n - last)
            last = n
            outcomes = [t.user_attrs.get("outcome") for t in trials]
            stable = sum(o in ("stable", "silent_failure") for o in outcomes)
            divergent = sum(o in DIVERGENT for o in outcomes)
            crashed = sum(t.state.name == "FAIL" for t in trials)
            completed = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
            best = (min if spec.objective.direction == "minimize" else max)(completed) if completed else None
            bar.set_postfix_str(
                f"stable {stable} | divergent {divergent}"
                + (f" | failed {crashed}" if crashed else "")
                + ("" if best is None else f" | best {best:.3g}")
            )
        if not alive:
            break
        time.sleep(poll_seconds)
    for p in procs:
        p.join()
    bar.close()
    codes = [p.exitcode for p in procs]
    if any(c != 0 for c in codes):
        print(f"pinnlab sweep: warning: worker exit codes {codes}", file=sys.stderr)
