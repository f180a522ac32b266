"""The MLflow store as the writer, the admin and the reader all see it.

Every function takes the tracking URI explicitly and uses its own ``MlflowClient``: no global
MLflow state (``mlflow.set_tracking_uri``, active runs) is touched, so several trackers can coexist
in one process.  Here live the pieces the three roles share: a client per URI, experiments, writes
batched within MLflow's limits, ending a run, and :class:`~pinnlab.core.errors.StoreError` for a store
that cannot be opened.

Which exceptions mean "the store failed" (:data:`STORE_FAILURES`), as measured against MLflow 3 with
SQLite, PostgreSQL and tracking servers: ``MlflowException`` (an unsupported scheme, a server that
answers with an error or not at all after MLflow's retries, SQL errors MLflow wraps), ``OSError``
(a database directory that cannot be created) and SQLAlchemy's errors (a file that is not a
database, an unparsable URL, a database server that refuses connections).  Anything else is a bug
and propagates with its traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

import mlflow
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH
from sqlalchemy.exc import SQLAlchemyError

from pinnlab import __version__
from pinnlab.core.errors import StoreError, first_line
from pinnlab.tracking.uri import artifact_root_for, resolve_tracking_uri, uri_origin

__all__ = [
    "STORE_FAILURES",
    "TERMINAL_STATUSES",
    "NONE",
    "client",
    "store_error",
    "get_or_create_experiment",
    "open_experiment",
    "experiment_of",
    "metric_key",
    "tag_value",
    "log_params_and_tags",
    "set_terminated",
    "check_status",
    "finite",
    "base_tags",
    "EXPERIMENT_KIND_TAG",
    "EXPERIMENT_KIND",
]

STORE_FAILURES = (MlflowException, OSError, SQLAlchemyError)
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
NONE = "none"  # tag value for "no such step / tensor" (tags are strings; "" reads as missing)
# MLflow 3's UI opens an experiment in its GenAI view (traces, no runs table) unless the experiment
# says it holds model training: the UI reads this tag when its view switcher is off, and the
# ``workflowType`` parameter of the URLs pinnlab prints (pinnlab.tracking.uri.runs_url) otherwise.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def client(tracking_uri: str | None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def store_error(tracking_uri: str | None, problem: str, fix: str) -> StoreError:
    """A StoreError for the MLflow store that ``tracking_uri`` resolves to, saying where the URI
    came from when it was not given (``$MLFLOW_TRACKING_URI``, the default store)."""
    origin = uri_origin(tracking_uri)
    return StoreError(
        StoreError.MLFLOW + (f" ({origin})" if origin else ""), resolve_tracking_uri(tracking_uri), problem, fix
    )


def get_or_create_experiment(client: mlflow.MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created with ``artifact_location=artifact_root`` if missing;
    tagged :data:`EXPERIMENT_KIND` (a model-training experiment, so MLflow's UI shows its runs).

    Safe when several processes (sweep workers) create it at once.  A deleted experiment is a
    StoreError: MLflow keeps its name reserved.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(
                name, artifact_location=artifact_root, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # created concurrently by another process
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise StoreError(
            StoreError.MLFLOW,
            client.tracking_uri,
            f"experiment {name!r} is deleted",
            f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) or choose another name",
        )
    if EXPERIMENT_KIND_TAG not in exp.tags:  # an experiment created before pinnlab set it, or by hand
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def open_experiment(tracking_uri: str | None, experiment: str) -> tuple[mlflow.MlflowClient, str]:
    """(client, experiment id) on the store of ``tracking_uri``; a StoreError if it cannot be used."""

    uri = resolve_tracking_uri(tracking_uri)
    try:
        c = mlflow.MlflowClient(tracking_uri=uri)
        return c, get_or_create_experiment(c, experiment, artifact_root_for(uri))
    except STORE_FAILURES as exc:  # bad scheme, unwritable path, not a database, unreachable server
        raise store_error(
            tracking_uri,
            f"cannot open it ({first_line(exc)})",
            "give a tracking URI whose directory can be created and written, or a server that answers",
        ) from exc


def experiment_of(tracking_uri: str | None, run_id: str) -> str:
    """The id of the experiment that holds run ``run_id`` (for a URL to its runs table)."""
    return client(tracking_uri).get_run(run_id).info.experiment_id


# ------------------------------------------------------------------------------------- conversions
_METRIC_KEY_INVALID = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_key(name: str) -> str:
    """An MLflow-valid metric key: characters MLflow refuses (``+``, ``(``, …) become ``_``.

    History columns keep their names; only the MLflow copy is renamed (``deriv/u_xy+u_yy`` ->
    ``deriv/u_xy_u_yy``), so a user problem's derivative names can never fail a run's logging.
    """
    return _METRIC_KEY_INVALID.sub("_", name)


def _param_value(value: Any) -> str:
    """A YAML/JSON scalar: ``true``, ``null``, ``0.001``, ``{}``; strings as they are."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:MAX_PARAM_VAL_LENGTH]


def tag_value(value: Any) -> str:
    """A tag's text: ``None`` as ``"none"``, anything else stringified, cut to MLflow's limit."""
    text = NONE if value is None else str(value)
    return text[:MAX_TAG_VAL_LENGTH]


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def log_params_and_tags(
    client: mlflow.MlflowClient,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """``log_batch`` within MLflow's limit of 100 params and 100 tags per call."""
    ps = [Param(str(k), _param_value(v)) for k, v in (params or {}).items()]
    for chunk in _chunks(ps, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk, synchronous=True)
    ts = [RunTag(str(k), tag_value(v)) for k, v in (tags or {}).items()]
    for chunk in _chunks(ts, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk, synchronous=True)


def check_status(status: str) -> None:
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"`status` must be one of {', '.join(TERMINAL_STATUSES)}, but got {status!r}.")


def set_terminated(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    """End a run.  For a tracking server MLflow prints "View run ... at: URL" on stdout, which is
    pinnlab's own (``--json`` prints exactly one object there): that line is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status=status)


def finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def base_tags() -> dict[str, str]:
    """MLflow's system tags of a run started by pinnlab, and pinnlab's version."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"

    return {
        "mlflow.user": user,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": "pinnlab",
        "pinnlab.version": __version__,
    }
