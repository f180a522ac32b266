"""Reading runs back: a sweep's child runs and a run's per-step history (for :mod:`pinnlab.analysis`
and :mod:`pinnlab.sweep.recovery`).

Reading never creates or migrates a store: before MLflow opens it, the store is checked read-only
(:func:`pinnlab.tracking.uri.check_tracking_store` with ``create=False``): a ``sqlite:///`` file that
does not exist, is empty or is another tool's database, an MLflow schema older than the installed
MLflow's, an in-memory database and a server that does not answer are one-line StoreErrors (MLflow
would create or migrate the schema and answer "no such run", or wait for minutes).
"""

from __future__ import annotations

import tempfile
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from pinnlab.core.errors import first_line
from pinnlab.core.keys import PARENT_RUN_TAG
from pinnlab.tracking.store import STORE_FAILURES, client, store_error
from pinnlab.tracking.uri import check_tracking_store, local_path, resolve_tracking_uri, sqlite_path

__all__ = ["parent_run", "child_runs", "run_history"]

_WRONG_STORE = "give the tracking URI the sweep used"


def parent_run(tracking_uri: str | None, parent_run_id: str):
    """(client, parent run) of a sweep; a StoreError when the store or the run is missing (the
    wrong store was given) or cannot be read."""
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.expanduser().is_file():  # MLflow would create an empty one
        raise store_error(tracking_uri, f"no MLflow store at {str(db)!r}", _WRONG_STORE)
    check_tracking_store(tracking_uri, create=False)
    c = mlflow.MlflowClient(tracking_uri=uri)
    try:
        return c, c.get_run(parent_run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise store_error(
                tracking_uri, f"run {parent_run_id!r} (the study's parent run) is not in this store", _WRONG_STORE
            ) from None
        raise store_error(tracking_uri, f"cannot read it ({first_line(exc)})", _WRONG_STORE) from None
    except STORE_FAILURES as exc:  # unreachable server, unreadable file
        raise store_error(tracking_uri, f"cannot read it ({first_line(exc)})", _WRONG_STORE) from None


def child_runs(tracking_uri: str | None, parent_run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """Every run whose parent is ``parent_run_id`` (a sweep's trials), as plain dicts.

    Keys: ``run_id``, ``status``, ``tags``, ``params``, ``metrics`` (latest value of each) and
    ``artifact_uri``.  ``status`` (e.g. ``"RUNNING"``) keeps only runs in that status.  A parent
    id unknown to the store is a StoreError (the wrong store was given).
    """
    c, parent = parent_run(tracking_uri, parent_run_id)
    query = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"
    if status is not None:
        query += f" and attributes.status = '{status}'"
    out, token = [], None
    while True:
        page = c.search_runs([parent.info.experiment_id], filter_string=query, max_results=1000, page_token=token)
        out += [
            {
                "run_id": r.info.run_id,
                "status": r.info.status,
                "tags": dict(r.data.tags),
                "params": dict(r.data.params),
                "metrics": dict(r.data.metrics),
                "artifact_uri": r.info.artifact_uri,
            }
            for r in page
        ]
        token = page.token
        if not token:
            return out


def run_history(tracking_uri: str | None, run_id: str, artifact_uri: str | None = None):
    """A run's per-step history as a DataFrame indexed by ``step`` (one column per metric), or None.

    From the ``history.csv`` artifact (every step, every column), read in place when
    ``artifact_uri`` (the run's, see :func:`child_runs`) is a local directory, else downloaded; for
    a run without it (killed before the end) from MLflow's metric histories (logged every
    ``metric_every`` steps), leaving out ``summary/*``.
    """
    import pandas as pd

    local = local_path(artifact_uri) if artifact_uri else None
    if local is not None and (local / "history.csv").is_file():
        return pd.read_csv(local / "history.csv", index_col="step")
    c = client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="pinnlab-history-") as tmp:
        try:
            path = c.download_artifacts(run_id, "history.csv", tmp)
        except (MlflowException, OSError):  # no such artifact: MLflow says so (local and server
            path = None  # stores alike), or the artifact store's file is gone; use the logged metrics
        if path is not None:
            return pd.read_csv(path, index_col="step")
    keys = [k for k in c.get_run(run_id).data.metrics if not k.startswith("summary/")]
    series = {}
    for key in keys:
        points = c.get_metric_history(run_id, key)
        series[key] = pd.Series({m.step: m.value for m in points}, dtype=float)
    if not series:
        return None
    frame = pd.DataFrame(series).sort_index()
    frame.index.name = "step"
    return frame
