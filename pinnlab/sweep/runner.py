"""Running a sweep: local worker processes, workers that join from anywhere, resumption, and a live
progress line.

``run_sweep`` creates (or resumes) the study and its MLflow parent run, queues the budget's slots
(:func:`pinnlab.sweep.study.enqueue_slots`), then starts ``workers`` processes on this machine
(``workers=0``: none; workers on other machines join with ``pinnlab worker``).  Each worker joins
the study through the storage exactly as a worker on another machine does (:func:`run_worker`),
and runs queued trials until the study's budget is spent.  The parent process imports no
TensorFlow; it watches the storage and prints one progress line: trials done / total, stable vs
divergent, best value.  Local workers have no fixed share of the trials: one that dies leaves its
work to the others.

A worker's loop
---------------
Take a queued slot while there is one (``study.optimize(n_trials=1)``: Optuna's optimize is what
sends heartbeats and fails stale trials first).  When none is queued but the budget is not spent,
the rest is running elsewhere: on an RDB storage the worker waits, every ``min(interval, 5)``
seconds checking heartbeats, so that a trial whose worker was killed is failed and retried (see
:mod:`pinnlab.sweep.recovery`) by a live worker instead of being lost; on the journal storage,
which has no heartbeats, it stops.  The worker that sees the budget spent closes any MLflow run
still RUNNING whose trial is not and ends the parent run FINISHED, so a study run only by remote
workers is closed too.

Signals: SIGTERM and SIGINT stop a worker at its trainer's next step
(:class:`pinnlab.signals.Terminate`): its trial ends FAIL with a retry queued, the MLflow run
KILLED, and :func:`run_worker` raises KeyboardInterrupt with a one-line account.

No ``gc_after_trial``: a full ``gc.collect()`` in a process holding TensorFlow costs about a
quarter of a short trial, and without it the memory stays bounded (docs/benchmarks.md, "gc after
each trial"; ``benchmarks/throughput.py`` records one collection as ``gc_collect_ms``).

Threads: TensorFlow would give every process all cores; with K workers on C cores each worker gets
``max(1, C // K)`` intra-op threads and one inter-op thread, set before TensorFlow starts
(``pinnlab worker --threads``).

Resuming: the budget is ``n_trials`` counted trials (:class:`pinnlab.sweep.study.Budget`).
Running the same command again runs only what is missing; a finished study is reported, not redone;
``--repair`` first fails and retries the RUNNING trials of workers that are gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pinnlab.sweep.spec import SweepSpec
from pinnlab.keys import (
    FINISHED_TAG,
    KIND_TAG,
    MLFLOW_RUN_ID,
    PARENT_ATTR,
    STORAGE_TAG,
    STUDY_TAG,
    TRACKING_ATTR,
    WORKER_ATTR,
)
from pinnlab.outcomes import Outcome, trial_outcome
from pinnlab.sweep.study import (
    budget,
    budget_kinds,
    create_or_load_study,
    default_storage_url,
    display_url,
    enqueue_slots,
    heartbeat_settings,
    load_study,
    uses_heartbeat,
)

__all__ = ["run_sweep", "run_worker", "SweepReport", "study_report"]


@dataclass
class SweepReport:
    study_name: str
    storage: str  # password hidden
    tracking_uri: str | None
    parent_run_id: str | None
    n_trials: int
    done: int = 0  # trials counted in the budget (see pinnlab.sweep.study.Budget)
    counts: dict[str, int] = field(default_factory=dict)  # every trial by Optuna state
    outcomes: dict[str, int] = field(default_factory=dict)  # by pinnlab outcome
    causes: dict[str, int] = field(default_factory=dict)  # trials per cause found in the run (pinnlab.causes)
    known_causes: dict[str, int] = field(default_factory=dict)  # trials per cause known before training
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    ran_now: int = 0  # counted trials finished by this command
    repaired: list[int] = field(default_factory=list)  # trials --repair marked FAIL (and queued again)
    closed_runs: int = 0  # MLflow runs --repair closed (KILLED) because their trial was not RUNNING
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def study_report(study, spec: SweepSpec, storage: str, tracking_uri: str | None) -> SweepReport:
    """Counts by state and by outcome; FAIL trials without an outcome are ``crash`` (counted),
    ``retried`` (a dead or stopped worker's trial, run again) or ``surplus`` (never trained)."""
    trials = study.get_trials(deepcopy=False)
    kinds = budget_kinds(trials)
    counts: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    causes: dict[str, int] = {}
    known: dict[str, int] = {}
    for t, kind in zip(trials, kinds):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
        o = trial_outcome(t.state.name, t.user_attrs.get("outcome"), kind)
        if o is not None:
            outcomes[o] = outcomes.get(o, 0) + 1
        for key, table in (("cause_names", causes), ("known_causes", known)):
            for name in filter(None, str(t.user_attrs.get(key) or "").split(",")):
                table[name] = table.get(name, 0) + 1
    best = None
    try:
        best = study.best_trial
    except ValueError:
        pass
    return SweepReport(
        study_name=spec.study_name,
        storage=display_url(storage),
        tracking_uri=tracking_uri,
        parent_run_id=study.user_attrs.get(PARENT_ATTR),
        n_trials=spec.n_trials,
        done=kinds.count("done"),
        counts=counts,
        outcomes=outcomes,
        causes=causes,
        known_causes=known,
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
    tracking_uri: str | None = None,
    n_trials: int | None = None,
    worker: int = 0,
    threads: int | None = None,
    track: bool | None = None,
) -> SweepReport:
    """Join a study and run its queued trials until the budget is spent (or this worker ran
    ``n_trials``); see the module docstring for the loop.

    ``tracking_uri``: how this machine reaches the study's MLflow store (default: the URI the study
    was created with).  ``track``: default, whether the study has an MLflow parent run.
    ``worker`` varies the sampler seed.  Returns the study's report, ``ran_now`` being the trials
    this worker ran.  Raises KeyboardInterrupt (with a one-line account) on SIGTERM / SIGINT.
    """
    import logging

    import optuna

    from pinnlab.signals import Terminate
    from pinnlab.sweep.recovery import TrialRecovery

    t0 = time.time()
    if threads:
        _limit_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:  # a stop is told in one line, not a traceback
        handler.addFilter(_no_interrupt_traceback)
    logging.getLogger("pinnlab").setLevel(logging.ERROR)  # per-trial warnings are in the trial's attrs
    recovery = TrialRecovery(tracking_uri)
    study, spec = load_study(study_name, storage, worker, stale_callback=recovery)
    parent = study.user_attrs.get(PARENT_ATTR)
    tracking_uri = tracking_uri or study.user_attrs.get(TRACKING_ATTR)
    recovery.tracking_uri = tracking_uri
    if track is None:
        track = parent is not None
    if track:
        from pinnlab.errors import ConfigError
        from pinnlab.tracking import check_parent_run

        if parent is None:
            raise ConfigError("--tracking-uri", f"study {study_name!r} was created with --no-track: it has no MLflow parent run")
        check_parent_run(tracking_uri, parent)
    from pinnlab.sweep.objective import Objective

    terminate = Terminate()
    objective = Objective(
        spec,
        tracking_uri=tracking_uri,
        experiment=spec.experiment or spec.study_name,
        parent_run_id=parent,
        track=track,
        callbacks=[terminate],
    )
    try:
        with terminate.installed([signal.SIGTERM, signal.SIGINT]), terminate.deferred():
            ran = _work(study, spec, storage, objective, terminate, n_trials)
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt(_stopped(study, objective, recovery, str(exc))) from None
    if track and budget(study.get_trials(deepcopy=False), spec.n_trials).spent:
        _close_study_runs(study, tracking_uri, parent)
    report = study_report(study, spec, storage, tracking_uri)
    report.ran_now = ran
    report.wall_seconds = time.time() - t0
    return report


def _no_interrupt_traceback(record) -> bool:
    """Logging filter: drop Optuna's "Trial N failed ... KeyboardInterrupt" record and traceback."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def _mine(study) -> list:
    """The trials this process took (user attribute ``worker``), for the account of a stop."""
    from pinnlab.sweep.recovery import worker_id

    me = worker_id()
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(WORKER_ATTR) == me]


def _work(study, spec, storage, objective, terminate, limit) -> int:
    """The worker's loop (module docstring); returns how many trials it ran."""
    from pinnlab.sweep.recovery import fail_stale

    poll = min(heartbeat_settings()[0], 5)
    ran = 0
    while limit is None or ran < limit:
        terminate.check()
        b = budget(study.get_trials(deepcopy=False), spec.n_trials)
        if b.spent:
            break
        if b.waiting and b.untaken > 0:
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[terminate.check])
            ran += 1
        elif b.untaken > 0:  # slots never queued (a study from an older pinnlab): queue them
            if not enqueue_slots(study, spec):
                break
        elif uses_heartbeat(storage):  # the rest runs elsewhere: wait, watching for dead workers
            fail_stale(study)
            time.sleep(poll)
        else:
            break
    return ran


def _stopped(study, objective, recovery, signal_text: str) -> str:
    """Recover the trial a signal stopped; the one-line account of what happened."""
    from optuna.trial import TrialState

    from pinnlab.sweep.recovery import worker_id

    number = objective.interrupted
    finished = sum(t.state.is_finished() and t.number != number for t in _mine(study))
    if number is None:
        return f"{signal_text} between trials; this worker finished {finished}"
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state == TrialState.RUNNING:  # Optuna tells FAIL before re-raising; in case it did not
        trial = study.tell(number, state=TrialState.FAIL)
    name = signal_text.rsplit(" ", 1)[-1]
    retried = recovery(study, trial, reason=f"{name}: worker {worker_id()} was stopped during the trial")
    run = " and its MLflow run KILLED" if trial.user_attrs.get(MLFLOW_RUN_ID) else ""
    again = "queued again" if retried else "not retried (retry limit reached)"
    return f"{signal_text}: trial {number} ended FAIL{run}, its slot {again}; this worker finished {finished}"


def _close_study_runs(study, tracking_uri, parent) -> None:
    """The budget is spent: no child run may stay RUNNING, and the parent run is FINISHED."""
    from pinnlab.sweep.recovery import close_orphan_runs, worker_id
    from pinnlab.tracking import close_runs

    close_orphan_runs(study, tracking_uri)
    close_runs(tracking_uri, [parent], {FINISHED_TAG: f"worker {worker_id()} (budget spent)"}, status="FINISHED")


def _worker_entry(kwargs: dict) -> None:
    """A local worker process: one line and exit code 130 when stopped by a signal, 2 on bad input."""
    from pinnlab.errors import PinnlabError
    from pinnlab.signals import Terminate

    try:
        with Terminate().installed([signal.SIGTERM, signal.SIGINT]):  # a stop during start-up, too
            run_worker(**kwargs)
    except KeyboardInterrupt as exc:
        print(f"pinnlab sweep: worker {kwargs.get('worker', 0)}: {exc}", file=sys.stderr)
        sys.exit(130)
    except PinnlabError as exc:
        print(f"pinnlab sweep: worker {kwargs.get('worker', 0)}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_sweep(
    spec: SweepSpec,
    *,
    workers: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    progress: bool = True,
    poll_seconds: float = 1.0,
    repair: bool = False,
) -> SweepReport:
    """Create or resume the study of ``spec`` and run its missing trials with ``workers`` local
    workers (0: only create it, for ``pinnlab worker`` elsewhere).

    ``tracking_uri``: default, the one the study was created with, else ``$MLFLOW_TRACKING_URI``
    or the local store.  ``repair``: first fail and queue again the trials of workers that are gone
    (:func:`pinnlab.sweep.recovery.repair_trials`) and close runs left RUNNING.
    """
    from pinnlab.sweep.recovery import TrialRecovery, close_orphan_runs, repair_trials
    from pinnlab.tracking import default_store, end_run, resolve_tracking_uri, start_parent_run

    t0 = time.time()
    storage = storage or default_storage_url(default_store())
    recovery = TrialRecovery()
    study = create_or_load_study(spec, storage, stale_callback=recovery)
    # resuming without --tracking-uri: the store the study was created with
    tracking_uri = resolve_tracking_uri(tracking_uri or study.user_attrs.get(TRACKING_ATTR)) if track else None
    recovery.tracking_uri = tracking_uri
    done = budget(study.get_trials(deepcopy=False), spec.n_trials).done
    parent = study.user_attrs.get(PARENT_ATTR)
    experiment = spec.experiment or spec.study_name
    if track and parent is None:
        parent = start_parent_run(
            tracking_uri,
            experiment,
            run_name=spec.study_name,
            tags={STUDY_TAG: spec.study_name, KIND_TAG: "study", STORAGE_TAG: display_url(storage)},
            params={"n_trials": spec.n_trials, "sampler": spec.sampler.name, "objective": spec.objective.metric,
                    "space": ",".join(spec.space)},
        )
        study.set_user_attr(PARENT_ATTR, parent)
        study.set_user_attr(TRACKING_ATTR, tracking_uri)
    repaired, closed = [], []
    if repair:
        repaired = repair_trials(study, storage, recovery)
        if track:
            closed = close_orphan_runs(study, tracking_uri)
    enqueue_slots(study, spec)
    b = budget(study.get_trials(deepcopy=False), spec.n_trials)
    if b.spent or workers == 0:
        report = study_report(study, spec, storage, tracking_uri)
        report.repaired, report.closed_runs = repaired, len(closed)
        report.wall_seconds = time.time() - t0
        return report
    workers = max(1, min(workers, b.untaken))
    status = "FINISHED"
    try:
        if workers == 1 and not progress:
            # one worker and no progress line to draw: run in this process (no second TF start-up)
            run_worker(spec.study_name, storage, tracking_uri=tracking_uri, track=track)
        else:
            _run_processes(study, spec, storage, tracking_uri, track, workers, done, progress, poll_seconds, recovery)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if track:
            end_run(tracking_uri, parent, status)
    report = study_report(study, spec, storage, tracking_uri)
    report.ran_now = report.done - done
    report.repaired, report.closed_runs = repaired, len(closed)
    report.wall_seconds = time.time() - t0
    return report


def _run_processes(study, spec, storage, tracking_uri, track, workers, done, progress, poll_seconds, recovery):
    """Start ``workers`` spawned processes; watch until they end."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        kwargs = dict(
            study_name=spec.study_name,
            storage=storage,
            tracking_uri=tracking_uri,
            worker=i,
            threads=threads,
            track=track,
        )
        p = ctx.Process(target=_worker_entry, args=(kwargs,), name=f"pinnlab-worker-{i}", daemon=False)
        p.start()
        procs.append(p)
    try:
        _watch(study, spec, storage, procs, done, progress, poll_seconds, recovery)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        raise


def _watch(study, spec, storage, procs, done_before, progress, poll_seconds, recovery) -> None:
    """Poll the storage while the workers run; one live progress line on stderr.  A worker process
    killed by a signal has its RUNNING trials repaired at once (the journal has no heartbeat)."""
    from tqdm.auto import tqdm

    from pinnlab.sweep.recovery import repair_trials

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
    seen_dead: set[int] = set()
    while True:
        alive = any(p.is_alive() for p in procs)
        # 0: done; 130: stopped by a signal, recovered its own trial; anything else left it RUNNING
        dead = [p.pid for p in procs if p.exitcode not in (None, 0, 130) and p.pid not in seen_dead]
        if dead:
            seen_dead.update(dead)
            repair_trials(study, storage, recovery, dead_pids=dead)
        trials = study.get_trials(deepcopy=False)
        counted = [t for t, kind in zip(trials, budget_kinds(trials)) if kind == "done"]
        n = len(counted)
        if n != last:
            bar.update(n - last)
            last = n
            outcomes = [Outcome.parse(t.user_attrs.get("outcome")) for t in counted]
            divergent = sum(o is not None and o.divergent for o in outcomes)
            stable = sum(o is not None and o.judged and not o.divergent for o in outcomes)
            crashed = sum(t.state.name == "FAIL" for t in counted)
            completed = [t.value for t in counted if t.state.name == "COMPLETE" and t.value is not None]
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
