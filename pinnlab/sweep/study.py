"""Optuna studies: storage, sampler and pruner from a SweepSpec; the spec travels with the study.

Storage
-------
Default: a JournalStorage file ``<store>/optuna.journal`` beside the MLflow store (``pinnlab-runs/``
or ``$PINNLAB_HOME``): safe for several processes on one machine, no server.  ``--storage`` takes an
RDB URL (``postgresql://…`` for several machines; ``sqlite:///…`` works but is not recommended for
parallel workers) or ``journal:PATH`` / a path ending in ``.journal``.  RDB storages get heartbeats
so a worker that dies is noticed and its trial marked FAIL.

The validated spec (with its base config resolved) is stored as the study's user attribute
``pinnlab_spec``: a worker joining from another machine needs only the study name and the storage.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pinnlab.errors import ConfigError
from pinnlab.sweep.space import grid_space
from pinnlab.sweep.spec import SweepSpec

__all__ = [
    "default_storage_url",
    "open_storage",
    "make_sampler",
    "make_pruner",
    "create_or_load_study",
    "enqueue_grid",
    "load_study",
    "FINISHED_STATES",
    "HEARTBEAT_INTERVAL",
    "GRACE_PERIOD",
]

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats (RDB storages)
GRACE_PERIOD = 30  # a trial silent this long belongs to a dead worker and is marked FAIL

SPEC_ATTR = "pinnlab_spec"
PARENT_ATTR = "mlflow_parent_run_id"
TRACKING_ATTR = "mlflow_tracking_uri"


def default_storage_url(store: Path) -> str:
    return f"journal:{store / 'optuna.journal'}"


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url[len("journal:") :]
    if "://" not in url and url.endswith((".journal", ".log")):
        return url
    return None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A storage object for a URL (see the module docstring)."""
    path = _journal_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError("--storage", f"{url!r} is not a storage URL (postgresql://…, sqlite:///…, journal:PATH)")
    try:
        return RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD)
    except Exception as exc:  # bad dialect, unreachable server, missing driver
        raise ConfigError("--storage", f"cannot open {url!r}: {str(exc).splitlines()[0]}") from None


def make_sampler(spec: SweepSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of one worker.

    ``grid``: Optuna's GridSampler lets simultaneous workers pick the same grid point, so the grid
    is enqueued up front instead (:func:`enqueue_grid`; a waiting trial is handed to exactly one
    worker) and workers sample at random only beyond the grid.
    """
    seed = spec.sampler.seed + worker  # workers must not propose the same sequence
    if spec.sampler.name in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_warmup_steps=p.warmup_steps)
    if p.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def create_or_load_study(spec: SweepSpec, storage_url: str) -> optuna.Study:
    """Create the study (storing the spec) or load it, refusing a spec that changed the space."""
    storage = open_storage(storage_url)
    study = optuna.create_study(
        study_name=spec.study_name,
        storage=storage,
        direction=spec.objective.direction,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
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
        if stored.get("n_trials") != new.get("n_trials"):
            study.set_user_attr(SPEC_ATTR, {**stored, "n_trials": new["n_trials"]})
    return study


def load_study(study_name: str, storage_url: str, worker: int = 0) -> tuple[optuna.Study, SweepSpec]:
    """Join an existing study (any machine): its spec comes from the storage."""
    storage = open_storage(storage_url)
    try:
        summary = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise ConfigError(
            "--study-name", f"{study_name!r} is not a study in this storage (studies: {', '.join(names) or 'none'})"
        ) from None
    data: dict[str, Any] | None = summary.user_attrs.get(SPEC_ATTR)
    if data is None:
        raise ConfigError("--study-name", f"{study_name!r} was not created by pinnlab (no {SPEC_ATTR})")
    spec = SweepSpec.from_dict(data)
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=make_sampler(spec, worker), pruner=make_pruner(spec)
    )
    return study, spec


def enqueue_grid(study: optuna.Study, spec: SweepSpec) -> int:
    """Enqueue every grid point not yet in the study (shuffled by the sampler seed); returns how many."""
    if spec.sampler.name != "grid":
        return 0
    space = grid_space(spec.space)
    names = list(space)
    points = [dict(zip(names, values)) for values in itertools.product(*space.values())]
    random.Random(spec.sampler.seed).shuffle(points)
    seen = [t.params for t in study.get_trials(deepcopy=False)]
    seen += [t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False)]
    todo = [p for p in points if p not in seen][: max(0, spec.n_trials - len(study.get_trials(deepcopy=False)))]
    for p in todo:
        study.enqueue_trial(p, skip_if_exists=True)
    return len(todo)


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
