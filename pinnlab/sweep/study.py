"""Optuna studies: storage, sampler and pruner from a SweepSpec; the spec travels with the study;
the budget is handed out as queued slots.

Storage
-------
Default: a JournalStorage file ``<store>/optuna.journal`` beside the MLflow store (``pinnlab-runs/``
or ``$PINNLAB_HOME``): safe for several processes on one machine, no server.  ``--storage`` takes an
RDB URL (``postgresql://…`` for several machines, through psycopg 3, a dependency, whatever
SQLAlchemy's default driver for the scheme; ``sqlite:///…`` works but is not recommended for parallel workers) or ``journal:PATH`` / a
path ending in ``.journal``.  RDB storages get heartbeats (every ``HEARTBEAT_INTERVAL`` s; a trial
silent for ``GRACE_PERIOD`` s is marked FAIL by the next live worker, see
:mod:`pinnlab.sweep.recovery`); ``PINNLAB_HEARTBEAT_INTERVAL`` / ``PINNLAB_GRACE_PERIOD`` override
them (whole seconds; the tests use 1 and 3 so that a killed worker is noticed in seconds, not half a
minute).  Optuna's JournalStorage has no heartbeat: a dead worker's trial stays RUNNING there until
the sweep that started the worker, or ``pinnlab sweep --repair``, repairs it.

Opening a storage to *join* a study (``create=False``: workers, reports) never creates anything: a
missing journal or SQLite file, or a database without Optuna's tables, is a one-line StoreError
instead of an empty store left behind.  No command puts Optuna's tables into another tool's SQLite
database (an MLflow store), and an in-memory database is refused (:func:`check_rdb_storage`).

The validated spec (with its base config resolved) is stored as the study's user attribute
``pinnlab_spec``: a worker joining from another machine needs only the study name and the storage.

The budget
----------
``n_trials`` is spent in *slots*: the study's creator enqueues one WAITING trial per slot (user
attribute ``budget_slot``; a grid point for the grid sampler, empty params otherwise, which the
sampler fills in when a worker takes the slot) and workers run queued trials only.  Optuna hands a
waiting trial to exactly one worker, so workers on several machines neither overshoot the budget nor
run a grid point twice.  What counts (:class:`Budget`): COMPLETE, PRUNED and FAIL trials, except a
FAIL whose slot was queued again (a trial of a dead or stopped worker, retried by
:mod:`pinnlab.sweep.recovery`) and a FAIL marked ``surplus`` (a worker that lost the race for the
last waiting slot; Optuna then creates a fresh trial, which pinnlab ends at once without training).
So a sweep of 8 trials in which one worker was killed ends with 8 counted trials plus the killed
one as FAIL, and ``pinnlab report`` shows all nine.
"""

from __future__ import annotations

import itertools
import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from pinnlab.core.errors import ConfigError, StoreError, first_line
from pinnlab.core.keys import SLOT_ATTR, SPEC_ATTR, SURPLUS_ATTR
from pinnlab.core.outcomes import Outcome
from pinnlab.sweep.boundary_sampler import BoundarySampler
from pinnlab.sweep.internals import fixed_params, retried_numbers
from pinnlab.sweep.journal import open_journal
from pinnlab.sweep.space import grid_space
from pinnlab.sweep.spec import SweepSpec
from pinnlab.tracking.uri import (
    check_server,
    default_storage_url,
    display_url,
    foreign_server_problem,
    in_memory,
    journal_path,
    sqlite_path,
    sqlite_problem,
)

__all__ = [
    "default_storage_url",
    "open_storage",
    "check_rdb_storage",
    "storage_lost",
    "StorageLost",
    "lost_storage_error",
    "make_sampler",
    "make_pruner",
    "create_or_load_study",
    "enqueue_slots",
    "load_study",
    "Budget",
    "budget",
    "budget_kinds",
    "heartbeat_settings",
    "uses_heartbeat",
    "display_url",
    "HEARTBEAT_INTERVAL",
    "GRACE_PERIOD",
]

HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats (RDB storages)
GRACE_PERIOD = 30  # a trial silent this long belongs to a dead worker and is marked FAIL
# 3 missed heartbeats: a worker whose database connection stalls for one interval is not declared dead


def uses_heartbeat(url: str) -> bool:
    """Whether trials in this storage send heartbeats (RDB storages; not the journal)."""
    return journal_path(url) is None


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds: the defaults or the PINNLAB_* overrides."""
    values = []
    for name, default in (("PINNLAB_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL), ("PINNLAB_GRACE_PERIOD", GRACE_PERIOD)):
        text = os.environ.get(name)
        if text is None or text == "":
            values.append(default)
            continue
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(name, f"{text!r} is not allowed: must be a whole number of seconds >= 1")
        values.append(value)
    interval, grace = values
    if grace <= interval:
        raise ConfigError(
            "PINNLAB_GRACE_PERIOD",
            f"{grace} is not allowed: must be greater than the heartbeat interval ({interval} s)",
        )
    return interval, grace


def open_storage(
    url: str,
    *,
    create: bool = True,
    read_only: bool = False,
    stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """A storage object for a URL (see the module docstring).

    ``create=False`` refuses to create a store that does not exist yet; ``read_only`` (reports) also
    leaves a journal untouched (:mod:`pinnlab.sweep.journal`: no tail repair, no lock).  ``stale_callback`` is
    called by Optuna for every trial it marks FAIL because its heartbeat stopped (RDB storages).
    """
    path = journal_path(url)
    if path is not None:
        return open_journal(url, Path(path), create=create, read_only=read_only)
    if "://" not in url:
        raise StoreError(
            StoreError.OPTUNA, url, "not a storage URL", "give postgresql://…, sqlite:///… or journal:PATH"
        )
    check_rdb_storage(url, create)
    interval, grace = heartbeat_settings()
    engine_url, engine_kwargs = url, {}
    if url.startswith("postgresql"):
        # a server that does not answer is an error after 10 s, not a hang (libpq waits forever by default)
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
        if url.startswith("postgresql://"):  # psycopg 3 (a dependency), whatever SQLAlchemy's default driver
            engine_url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                engine_url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=stale_callback,
                skip_table_creation=not create,
            )
    except Exception as exc:  # bad dialect, unreachable server, missing driver, no Optuna tables
        raise StoreError(StoreError.OPTUNA, url, f"cannot open it ({first_line(_root(exc))})", _CHECK_SERVER) from None


def check_rdb_storage(url: str, create: bool = True) -> None:
    """A one-line StoreError, before Optuna opens the database, for an RDB storage that cannot work
    or must not be written: an in-memory database (workers are other processes; nothing outlives
    the command), a SQLite file that is not Optuna's (:func:`~pinnlab.tracking.uri.sqlite_problem`:
    Optuna would add its tables to an MLflow database or to a file named by a typo), a database
    server that does not answer (:func:`~pinnlab.tracking.uri.check_server`) or whose database is
    MLflow's (:func:`~pinnlab.tracking.uri.foreign_server_problem`).  Only reads."""
    if in_memory(url):
        raise StoreError(
            StoreError.OPTUNA,
            url,
            "an in-memory database is lost when the command ends and workers cannot share it",
            "give sqlite:///PATH, postgresql://… or journal:PATH",
        )
    db = sqlite_path(url)
    problem = sqlite_problem(db, "optuna", create) if db is not None else None
    if problem is None and db is None:
        reason = check_server(url)
        problem = (f"cannot open it ({reason})", _CHECK_SERVER) if reason else foreign_server_problem(url, "optuna")
    if problem:
        raise StoreError(StoreError.OPTUNA, url, *problem)


_CHECK_SERVER = "check the URL (driver, host, database) and that the server answers, or give the storage the sweep used"


def storage_lost(exc: BaseException) -> BaseException | None:
    """The driver's error when ``exc`` (or an error it was raised from or during) means an RDB
    storage stopped answering mid-command (a server stopped, a dropped connection), else None.

    Optuna wraps such failures in ``StorageInternalError`` or lets SQLAlchemy's
    ``OperationalError`` / ``InterfaceError`` through; its own trial loop may even turn them into
    an ``UnboundLocalError`` raised while handling them, so the whole chain is searched.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (optuna.exceptions.StorageInternalError, OperationalError, InterfaceError)):
            return _root(e)
        todo += [e.__cause__, e.__context__]
    return None


class StorageLost(StoreError):
    """An RDB storage that stopped answering mid-command (see :func:`storage_lost`)."""


def lost_storage_error(url: str, root: BaseException) -> StorageLost:
    """The one line for a storage lost mid-command (see :func:`storage_lost`)."""
    return StorageLost(
        StoreError.OPTUNA,
        url,
        f"lost the connection to it ({first_line(root)})",
        "once the database server answers again, run the same command: it repairs the trials left RUNNING",
    )


def _root(exc: BaseException) -> BaseException:
    """The original error under Optuna's and SQLAlchemy's wrappers (the driver's own message)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def make_sampler(spec: SweepSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of one worker.

    ``grid``: Optuna's GridSampler lets simultaneous workers pick the same grid point, so the grid
    is enqueued up front instead (:func:`enqueue_slots`; a waiting trial is handed to exactly one
    worker) and workers sample at random only beyond the grid.
    """
    seed = spec.sampler.seed + worker  # workers must not propose the same sequence
    if spec.sampler.name in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler.name == "boundary":
        return BoundarySampler(
            seed=seed, n_startup=spec.sampler.n_startup, n_bisect=spec.sampler.n_bisect, explore=spec.sampler.explore
        )
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_warmup_steps=p.warmup_steps)
    if p.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def create_or_load_study(
    spec: SweepSpec,
    storage_url: str,
    stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.Study:
    """Create the study (storing the spec) or load it, refusing a spec that changed the space.

    An existing study is loaded first and checked before anything is written: ``create_study(...,
    load_if_exists=True)`` appends a create-study record to a journal even when the study exists.
    """
    storage = open_storage(storage_url, stale_callback=stale_callback)
    kwargs = dict(study_name=spec.study_name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))
    try:
        study = optuna.load_study(**kwargs)
    except KeyError:
        try:
            study = optuna.create_study(direction=spec.objective.direction, **kwargs)
        except optuna.exceptions.DuplicatedStudyError:  # created meanwhile by another sweep
            study = optuna.load_study(**kwargs)
    except Exception as exc:  # a journal that is not one, a database without Optuna's tables
        raise StoreError(
            StoreError.OPTUNA, storage_url, f"cannot read studies from it ({first_line(_root(exc))})", _CHECK_SERVER
        ) from None
    stored = study.user_attrs.get(SPEC_ATTR)
    new = spec.to_dict()
    if stored is None:
        study.set_user_attr(SPEC_ATTR, new)
    else:
        for key in ("space", "objective", "base_config"):
            if stored.get(key) != new.get(key):
                raise ConfigError(
                    key,
                    f"differs from the one study {spec.study_name!r} was created with; "
                    "use another --study-name or the original sweep file",
                )
        # the budget and the batch may change between runs of the same study
        changed = {key: new[key] for key in ("n_trials", "batch") if stored.get(key) != new.get(key)}
        if changed:
            study.set_user_attr(SPEC_ATTR, {**stored, **changed})
    return study


def _load(study_name: str, storage: optuna.storages.BaseStorage, url: str, **kwargs) -> optuna.Study:
    """``optuna.load_study`` with one-line errors: unknown study (listing those that exist), or a
    database that holds no Optuna study tables."""
    try:
        return optuna.load_study(study_name=study_name, storage=storage, **kwargs)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise ConfigError(
            "--study-name",
            f"{study_name!r} is not a study in {display_url(url)} (studies: {', '.join(names) or 'none'})",
        ) from None
    except Exception as exc:  # e.g. a PostgreSQL database without Optuna's tables
        raise StoreError(
            StoreError.OPTUNA, url, f"cannot read studies from it ({first_line(_root(exc))})", _CHECK_SERVER
        ) from None


def load_study(
    study_name: str,
    storage_url: str,
    worker: int = 0,
    stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> tuple[optuna.Study, SweepSpec]:
    """Join an existing study (any machine): its spec comes from the storage; nothing is created."""
    storage = open_storage(storage_url, create=False, stale_callback=stale_callback)
    summary = _load(study_name, storage, storage_url)
    data: dict[str, Any] | None = summary.user_attrs.get(SPEC_ATTR)
    if data is None:
        raise ConfigError("--study-name", f"{study_name!r} was not created by pinnlab (no {SPEC_ATTR})")
    spec = SweepSpec.from_dict(data)
    study = _load(study_name, storage, storage_url, sampler=make_sampler(spec, worker), pruner=make_pruner(spec))
    return study, spec


@dataclass(frozen=True)
class Budget:
    """How much of a study's ``n_trials`` is spent (see the module docstring for what counts)."""

    n_trials: int
    done: int  # counted: COMPLETE, PRUNED, and FAIL that was neither retried nor surplus
    running: int
    waiting: int  # queued slots nobody has taken yet
    retried: int  # FAIL trials of dead or stopped workers whose slot was queued again
    surplus: int  # FAIL trials that lost the race for the last slot (never trained)

    @property
    def spent(self) -> bool:
        return self.done >= self.n_trials

    @property
    def untaken(self) -> int:
        """Slots no worker is running (waiting in the queue, or not enqueued yet)."""
        return self.n_trials - self.done - self.running


def budget_kinds(trials: Sequence[FrozenTrial]) -> list[str]:
    """How the budget counts each trial: ``done`` (counted), ``running``, ``waiting``, ``retried``
    or ``surplus``."""
    retried = retried_numbers(trials)
    kinds = []
    for t in trials:
        if t.state == TrialState.RUNNING:
            kinds.append("running")
        elif t.state == TrialState.WAITING:
            kinds.append("waiting")
        elif t.state == TrialState.FAIL and t.number in retried:
            kinds.append(Outcome.RETRIED)
        elif t.state == TrialState.FAIL and t.user_attrs.get(SURPLUS_ATTR):
            kinds.append(Outcome.SURPLUS)
        else:
            kinds.append("done")
    return kinds


def budget(trials: Sequence[FrozenTrial], n_trials: int) -> Budget:
    kinds = budget_kinds(trials)
    counts = {str(k): kinds.count(k) for k in ("done", "running", "waiting", Outcome.RETRIED, Outcome.SURPLUS)}
    return Budget(n_trials=n_trials, **counts)


def enqueue_slots(study: optuna.Study, spec: SweepSpec) -> int:
    """Enqueue the slots the budget lacks; returns how many.

    Grid sampler: every grid point not yet in the study (shuffled by the sampler seed) first, then
    empty slots (sampled at random beyond the grid); other samplers: empty slots.
    """
    trials = study.get_trials(deepcopy=False)
    b = budget(trials, spec.n_trials)
    missing = spec.n_trials - b.done - b.running - b.waiting
    if missing <= 0:
        return 0
    points: list[dict[str, Any]] = []
    if spec.sampler.name == "grid":
        space = grid_space(spec.space)
        names = list(space)
        points = [dict(zip(names, values)) for values in itertools.product(*space.values())]
        random.Random(spec.sampler.seed).shuffle(points)
        seen = [t.params for t in trials] + [fixed_params(t) for t in trials]
        points = [p for p in points if p not in seen]
    first = 1 + max((t.user_attrs.get(SLOT_ATTR, -1) for t in trials), default=-1)
    for i in range(missing):
        study.enqueue_trial(points[i] if i < len(points) else {}, user_attrs={SLOT_ATTR: first + i})
    return missing
