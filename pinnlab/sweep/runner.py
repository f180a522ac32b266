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
which has no heartbeats, it stops.  With ``batch: B`` (or ``--batch``) a worker takes up to B
queued slots at a time (:func:`run_batch`): the trials that share a network train as one stacked
step, each told its own end.  The worker that sees the budget spent closes any MLflow run
still RUNNING whose trial is not and ends the parent run FINISHED, so a study run only by remote
workers is closed too.

Signals: SIGTERM and SIGINT stop a worker at its trainer's next step
(:class:`pinnlab.core.signals.Terminate`): its trial ends FAIL with a retry queued, the MLflow run
KILLED, and :func:`run_worker` raises KeyboardInterrupt with a one-line account.  A step that
does not end within the stop grace (or a second signal) is not waited for: the watchdog of
:mod:`pinnlab.core.signals` does the same (:func:`abandon`) and exits the process.

No ``gc_after_trial``: a full ``gc.collect()`` in a process holding TensorFlow costs about a
quarter of a short trial, and without it the memory stays bounded (docs/benchmarks.md, "gc after
each trial"; ``benchmarks/speed/throughput.py`` records one collection as ``gc_collect_ms``).

Threads: TensorFlow would give every process all cores; with K workers on C cores each worker gets
``max(1, C // K)`` intra-op threads and one inter-op thread, set before TensorFlow starts
(``pinnlab worker --threads``).

A lost storage (a database server stopped mid-sweep): the worker that notices ends its trial's
MLflow run (KILLED when stopped mid-trial) and raises one StoreError naming the storage instead of
Optuna's and SQLAlchemy's tracebacks (its heartbeat thread's included); the sweep stops its
workers and ends the parent run KILLED.  Once the server answers again, the same command repairs
the trials left RUNNING and finishes the study.

The study in MLflow: when the sweep ends (also after a resume, and when it finds the budget already
spent), its parent run gets the study's report (``report.md``, as ``pinnlab report --format
markdown``) and its offline dashboard (``dashboard.html``, which MLflow's artifact viewer shows) as
artifacts, replacing those of an earlier end.

Resuming: the budget is ``n_trials`` counted trials (:class:`pinnlab.sweep.study.Budget`).
Running the same command again runs only what is missing; a finished study is reported, not redone;
``--repair`` first fails and retries the RUNNING trials of workers that are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from pinnlab.core.errors import ConfigError, StoreError
from pinnlab.core.keys import (
    FINISHED_TAG,
    INCOMPLETE_TAG,
    KIND_TAG,
    PARENT_ATTR,
    STORAGE_TAG,
    STUDY_TAG,
    TRACKING_ATTR,
)
from pinnlab.core.outcomes import Outcome, trial_outcome
from pinnlab.core.signals import Once, Terminate, checkpoint, current, on_abort
from pinnlab.sweep.processes import run_processes
from pinnlab.sweep.recovery import TrialRecovery, close_orphan_runs, fail_stale, repair_trials, worker_id
from pinnlab.sweep.spec import SweepSpec
from pinnlab.sweep.stops import QuietStop, abandon, kill_parent, lost_storage_is_one_line, quiet_lost_threads, stopped
from pinnlab.sweep.study import (
    StorageLost,
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
from pinnlab.tracking import (
    check_parent_run,
    close_runs,
    default_store,
    end_run,
    log_files,
    resolve_tracking_uri,
    set_tags,
    start_parent_run,
)
from pinnlab.tracking.uri import check_tracking_store, sqlite_path

__all__ = ["run_sweep", "run_worker", "SweepReport", "study_report"]


@dataclass
class SweepReport:
    study_name: str
    storage: str  # password hidden
    tracking_uri: str | None
    parent_run_id: str | None
    n_trials: int
    experiment: str | None = None  # the MLflow experiment of the study's runs (None: not tracked)
    experiment_id: str | None = None  # its id (the runs table's URL), once the sweep or worker ended
    done: int = 0  # trials counted in the budget (see pinnlab.sweep.study.Budget)
    counts: dict[str, int] = field(default_factory=dict)  # every trial by Optuna state
    outcomes: dict[str, int] = field(default_factory=dict)  # by pinnlab outcome
    causes: dict[str, int] = field(default_factory=dict)  # trials per cause found in the run (pinnlab.training.causes)
    known_causes: dict[str, int] = field(default_factory=dict)  # trials per cause known before training
    risks: dict[str, int] = field(default_factory=dict)  # trials that worked per rule that held (a risk, not a cause)
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    ran_now: int = 0  # counted trials finished by this command
    repaired: list[int] = field(default_factory=list)  # trials --repair marked FAIL (and queued again)
    closed_runs: int = 0  # MLflow runs --repair closed (KILLED) because their trial was not RUNNING
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def best_trial(study, trials) -> Any:
    """The best COMPLETE trial that worked (``Outcome.worked``): a stalled or silently failed
    trial keeps its value as a result but is never the answer of the sweep; None if none."""
    ok = [
        t
        for t in trials
        if t.state.name == "COMPLETE"
        and t.values
        and len(t.values) == 1
        and (Outcome.parse(t.user_attrs.get("outcome")) or Outcome.STABLE).worked
    ]
    if not ok:
        return None
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(ok, key=lambda t: t.values[0])


def study_report(study, spec: SweepSpec, storage: str, tracking_uri: str | None) -> SweepReport:
    """Counts by state and by outcome; FAIL trials without an outcome are ``crash`` (counted),
    ``retried`` (a dead or stopped worker's trial, run again) or ``surplus`` (never trained)."""
    trials = study.get_trials(deepcopy=False)
    kinds = budget_kinds(trials)
    counts: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    causes: dict[str, int] = {}
    known: dict[str, int] = {}
    risks: dict[str, int] = {}
    for t, kind in zip(trials, kinds):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
        o = trial_outcome(t.state.name, t.user_attrs.get("outcome"), kind)
        if o is not None:
            outcomes[o] = outcomes.get(o, 0) + 1
        for key, table in (("cause_names", causes), ("known_causes", known), ("risk_names", risks)):
            for name in filter(None, str(t.user_attrs.get(key) or "").split(",")):
                table[name] = table.get(name, 0) + 1
    best = best_trial(study, trials)
    return SweepReport(
        study_name=spec.study_name,
        storage=display_url(storage),
        tracking_uri=tracking_uri,
        parent_run_id=study.user_attrs.get(PARENT_ATTR),
        n_trials=spec.n_trials,
        experiment=(spec.experiment or spec.study_name) if tracking_uri else None,
        done=kinds.count("done"),
        counts=counts,
        outcomes=outcomes,
        causes=causes,
        known_causes=known,
        risks=risks,
        best_value=None if best is None else best.value,
        best_params=None if best is None else best.params,
    )


def _limit_threads(threads: int) -> None:
    """``threads`` intra-op threads and one inter-op thread for this worker's TensorFlow: set in the
    environment, which :mod:`pinnlab.backend` applies when TensorFlow starts.  A TensorFlow already
    running in this process keeps its pools (they cannot change); that is said in one warning."""
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            warnings.warn(
                f"--threads {threads} has no effect in this process: its TensorFlow already runs with "
                f"{current or 'all cores as'} intra-op threads (a new worker process applies it)",
                RuntimeWarning,
                stacklevel=2,
            )


def run_worker(
    study_name: str,
    storage: str,
    *,
    tracking_uri: str | None = None,
    n_trials: int | None = None,
    worker: int = 0,
    threads: int | None = None,
    track: bool | None = None,
    batch: int | None = None,
) -> SweepReport:
    """Join a study and run its queued trials until the budget is spent (or this worker ran
    ``n_trials``); see the module docstring for the loop.

    ``tracking_uri``: how this machine reaches the study's MLflow store (default: the URI the study
    was created with).  ``track``: default, whether the study has an MLflow parent run.
    ``worker`` varies the sampler seed.  ``batch``: trials asked for at a time (default: the
    study's ``batch``; :func:`run_batch`).  Returns the study's report, ``ran_now`` being the trials
    this worker ran.  Raises KeyboardInterrupt (with a one-line account) on SIGTERM / SIGINT.
    """
    import optuna

    t0 = time.time()
    if threads:
        _limit_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("pinnlab").setLevel(logging.ERROR)  # per-trial warnings are in the trial's attrs
    recovery = TrialRecovery(tracking_uri)
    study, spec = load_study(study_name, storage, worker, stale_callback=recovery)
    parent = study.user_attrs.get(PARENT_ATTR)
    tracking_uri = tracking_uri or study.user_attrs.get(TRACKING_ATTR)
    recovery.tracking_uri = tracking_uri
    if track is None:
        track = parent is not None
    if track:
        if parent is None:
            raise ConfigError(
                "--tracking-uri", f"study {study_name!r} was created with --no-track: it has no MLflow parent run"
            )
        check_parent_run(tracking_uri, parent)  # checks the store read-only first (never creates one)
    from pinnlab.sweep.objective import Objective, Surplus

    terminate = current() or Terminate()  # the CLI's or the worker process's handler, if installed
    quiet = QuietStop(terminate, (KeyboardInterrupt, Surplus))
    handlers = list(logging.getLogger("optuna").handlers)
    for handler in handlers:  # a stop is told in one line, not a traceback or Optuna's warnings
        handler.addFilter(quiet)
    objective = Objective(
        spec,
        tracking_uri=tracking_uri,
        experiment=spec.experiment or spec.study_name,
        parent_run_id=parent,
        track=track,
        callbacks=[terminate],
    )
    try:
        with (
            lost_storage_is_one_line(storage),
            quiet_lost_threads(),
            terminate.installed([signal.SIGTERM, signal.SIGINT]),
            terminate.deferred(),
            on_abort(lambda: abandon(study, recovery, terminate.received)),
        ):
            # a trial of k seeds is one stacked training already; batching such trials would only
            # change what the sampler sees pending, so they are asked for one at a time
            ran = _work(
                study, spec, storage, objective, terminate, n_trials, 1 if spec.replicates > 1 else batch or spec.batch
            )
    except KeyboardInterrupt as exc:
        with lost_storage_is_one_line(storage):  # the stop's own account needs the storage
            account = stopped(study, objective, recovery, str(exc))
        raise KeyboardInterrupt(account) from None
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
    with lost_storage_is_one_line(storage):
        if track and budget(study.get_trials(deepcopy=False), spec.n_trials).spent:
            _close_study_runs(study, tracking_uri, parent)
        report = study_report(study, spec, storage, tracking_uri)
    if track:
        report.experiment_id = _experiment_id(tracking_uri, parent)
    report.ran_now = ran
    report.wall_seconds = time.time() - t0
    return report


def run_batch(study, objective, n: int) -> None:
    """Ask the sampler for ``n`` trials (each sees the others pending, as parallel workers' trials:
    TPE's constant liar), run them as one batch (:meth:`Objective.run_batch`) and tell each its end;
    heartbeats and stale-trial checks as ``study.optimize`` does them."""
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
    from optuna.trial import TrialState

    if is_heartbeat_enabled(study._storage):
        fail_stale(study)
    trials = [study.ask() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        for trial in trials:
            stack.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
        try:
            objective.run_batch(trials)
        finally:  # the trials that ended are told; an interrupted one stays for the stop's recovery (FAIL, retry)
            for trial in trials:
                value, state = objective.batch_ends.get(trial.number, (None, TrialState.FAIL))
                study.tell(trial, value) if state == TrialState.COMPLETE else study.tell(trial, state=state)


def _work(study, spec, storage, objective, terminate, limit, batch: int = 1) -> int:
    """The worker's loop (module docstring); returns how many trials it ran."""

    poll = min(heartbeat_settings()[0], 5)
    ran = 0
    while limit is None or ran < limit:
        terminate.check()
        b = budget(study.get_trials(deepcopy=False), spec.n_trials)
        if b.spent:
            break
        if b.waiting and b.untaken > 0:
            n = min(batch, b.waiting, b.untaken, *([] if limit is None else [limit - ran]))
            if n > 1:
                run_batch(study, objective, n)
                terminate.check()
            else:
                study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[terminate.check])
            ran += n
        elif b.untaken > 0:  # slots never queued (a study from an older pinnlab): queue them
            if not enqueue_slots(study, spec):
                break
        elif uses_heartbeat(storage):  # the rest runs elsewhere: wait, watching for dead workers
            fail_stale(study)
            time.sleep(poll)
        else:
            break
    return ran


def _close_study_runs(study, tracking_uri, parent) -> None:
    """The budget is spent: no child run may stay RUNNING, and the parent run is FINISHED."""

    close_orphan_runs(study, tracking_uri)
    close_runs(tracking_uri, [parent], {FINISHED_TAG: f"worker {worker_id()} (budget spent)"}, status="FINISHED")
    end_run(tracking_uri, parent, "FINISHED")  # also when a sweep that ended earlier marked it FAILED


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

    t0 = time.time()
    storage = storage or default_storage_url(default_store())
    if track:  # an unreachable, foreign or in-memory MLflow store: one line before the study is written
        checked = check_tracking_store(tracking_uri)
        _check_apart(storage, checked)
    recovery = TrialRecovery()
    study = create_or_load_study(spec, storage, stale_callback=recovery)
    # resuming without --tracking-uri: the store the study was created with
    tracking_uri = resolve_tracking_uri(tracking_uri or study.user_attrs.get(TRACKING_ATTR)) if track else None
    if track and tracking_uri != checked:
        check_tracking_store(tracking_uri)
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
            params={
                "n_trials": spec.n_trials,
                "sampler": spec.sampler.name,
                "objective": spec.objective.metric,
                "space": ",".join(spec.space),
            },
        )
        study.set_user_attr(PARENT_ATTR, parent)
        study.set_user_attr(TRACKING_ATTR, tracking_uri)
    # Without --repair, only what certainly has no worker: RUNNING trials of dead processes on this
    # machine (local workers killed, or left when their sweep was killed); --repair does the rest.
    repaired = repair_trials(study, storage, recovery, dead_here_only=not repair)
    closed = close_orphan_runs(study, tracking_uri) if track and (repair or repaired) else []
    enqueue_slots(study, spec)
    b = budget(study.get_trials(deepcopy=False), spec.n_trials)
    if b.spent or workers == 0:
        if track and b.spent:  # e.g. finished by `pinnlab worker`s: the parent run gets the analysis
            _attach_analysis(spec, storage, tracking_uri, parent)
        report = study_report(study, spec, storage, tracking_uri)
        report.experiment_id = _experiment_id(tracking_uri, parent) if track else None
        report.repaired, report.closed_runs = repaired, len(closed)
        report.wall_seconds = time.time() - t0
        return report
    workers = max(1, min(workers, b.untaken))
    status = "FINISHED"
    parent_end = Once()  # the stop watchdog's KILLED or the end below, never both
    try:
        checkpoint()  # a stop while the study was written: before any worker starts
        with lost_storage_is_one_line(storage), on_abort(lambda: kill_parent(parent_end, tracking_uri, parent)):
            if workers == 1 and not progress:
                # one worker and no progress line to draw: run in this process (no second TF start-up)
                run_worker(spec.study_name, storage, tracking_uri=tracking_uri, track=track)
            else:
                run_processes(
                    study,
                    spec,
                    storage,
                    tracking_uri,
                    track,
                    workers,
                    done,
                    progress,
                    poll_seconds,
                    recovery,
                    run_worker,
                )
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except StorageLost:  # nothing more can be counted
        status = "KILLED"
        raise
    finally:
        if track:
            parent_end(lambda: _end_parent(study, spec, tracking_uri, parent, status))
    if track:
        _attach_analysis(spec, storage, tracking_uri, parent)
    with lost_storage_is_one_line(storage):
        report = study_report(study, spec, storage, tracking_uri)
    report.experiment_id = _experiment_id(tracking_uri, parent) if track else None
    report.ran_now = report.done - done
    report.repaired, report.closed_runs = repaired, len(closed)
    report.wall_seconds = time.time() - t0
    return report


REPORT_ARTIFACT = "report.md"  # the parent run's copy of `pinnlab report STUDY --format markdown`
DASHBOARD_ARTIFACT = "dashboard.html"  # and of `pinnlab dashboard STUDY` (MLflow's artifact viewer shows it)


def _attach_analysis(spec: SweepSpec, storage: str, tracking_uri: str, parent: str) -> None:
    """Log the study's report (markdown) and its offline dashboard as artifacts of the parent run,
    replacing those of an earlier end of the same study (a resumed sweep).

    The study is read once for both (the dashboard's metrics include the report's).  Failing here
    costs the two files, never the sweep: its trials are recorded, and ``pinnlab report`` /
    ``pinnlab dashboard`` make them from the stores at any time; the reason is logged.
    """
    import tempfile
    from pathlib import Path

    from pinnlab.analysis import build_report, load_study_data, render_report
    from pinnlab.dashboards.divergence import METRICS, build
    from pinnlab.dashboards.page import write_page

    try:
        data = load_study_data(spec.study_name, storage, tracking_uri, metrics=METRICS)
        with tempfile.TemporaryDirectory(prefix="pinnlab-analysis-") as tmp:
            report = Path(tmp) / REPORT_ARTIFACT
            report.write_text(render_report(build_report(data), "markdown"))
            dashboard = write_page(Path(tmp) / DASHBOARD_ARTIFACT, *build(data))
            log_files(tracking_uri, parent, [report, dashboard])
    except Exception as exc:  # anything: see the docstring
        logging.getLogger("pinnlab.sweep").warning(
            "the report and dashboard of study %s were not logged to its parent run %s (%s: %s); "
            "`pinnlab report` and `pinnlab dashboard` make them",
            spec.study_name,
            parent,
            type(exc).__name__,
            exc,
        )


def _experiment_id(tracking_uri: str | None, parent: str | None) -> str | None:
    """The MLflow experiment of the study's parent run (None when it cannot be read)."""
    from pinnlab.tracking.store import STORE_FAILURES, experiment_of

    if parent is None:
        return None
    try:
        return experiment_of(tracking_uri, parent)
    except STORE_FAILURES:  # the summary then names the store without the runs table's address
        return None


def _check_apart(storage: str, tracking_uri: str) -> None:
    """Refuse one SQLite file as both the Optuna storage and the MLflow store: each tool would
    create its schema in the other's database."""

    db, other = sqlite_path(storage), sqlite_path(tracking_uri)
    if db is not None and other is not None and db.expanduser().resolve() == other.expanduser().resolve():
        raise StoreError(
            StoreError.OPTUNA,
            storage,
            "is the MLflow tracking store's database too",
            "give the sweep a storage of its own (a journal or another database file)",
        )


def _end_parent(study, spec, tracking_uri, parent, status) -> None:
    """End the parent run: FINISHED only when the budget is spent; a sweep whose workers ended with
    trials missing (crashed workers, retry limit) ends FAILED with tag ``pinnlab.incomplete``, and
    the run that completes the budget later ends it FINISHED."""

    if status == "FINISHED":  # a stopped sweep, or one whose storage was lost, reads no counts
        b = budget(study.get_trials(deepcopy=False), spec.n_trials)
        if not b.spent:
            status = "FAILED"
            set_tags(tracking_uri, parent, {INCOMPLETE_TAG: f"{b.done}/{spec.n_trials} trials ({b.running} RUNNING)"})
    end_run(tracking_uri, parent, status)
