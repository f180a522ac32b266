"""Plots of a recorded run, drawn on demand: ``pinnlab plots RUN_ID``.

Why: a sweep trial of 50 steps trains in about the time its plots take to draw (~1 s, several on a
loaded machine), so sweep trials do not draw them (their ``history.csv``, metrics and tags are
logged); this draws a run's ``plots/*.png`` from its logged history and tags, and logs
them to the same run, whenever someone wants to look.  ``pinnlab run`` still draws them itself (on a
background thread, :mod:`pinnlab.tracking.background`).

Where they go is checked before anything is drawn (:func:`check_destination`): a store may come
from anywhere, and its runs' ``artifact_uri`` can name any directory (``/etc``, another user's
home).  A local artifact location must lie in the directory of the store's SQLite database (its
``artifacts/``, or MLflow's ``mlruns/`` beside it), links resolved; for a tracking or database
server, which has no local directory of its own, it must be a directory this user owns and can
write.  An artifact store reached through its own protocol (``mlflow-artifacts:``, ``s3:``) is the
server's business.  A plot that cannot be copied in full is removed and named in the error.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from pinnlab.core.errors import ConfigError, PinnlabError
from pinnlab.core.preflight import first_existing
from pinnlab.core.summary import FIELD, INT_FIELDS
from pinnlab.tracking.reader import run_history
from pinnlab.tracking.store import client as open_client
from pinnlab.tracking.uri import local_path, resolve_tracking_uri, sqlite_path

__all__ = ["plot_run", "check_destination"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_destination(run_id: str, artifact_uri: str, tracking_uri: str | None) -> Path | None:
    """The local directory run ``run_id``'s plots would be written to (``<artifacts>/plots``,
    resolved), or None when the artifact store takes them through its own protocol; a ConfigError
    naming the path when it is outside the store or not this user's to write (see the module)."""
    if _SCHEME.match(artifact_uri) and not artifact_uri.startswith("file:"):
        return None
    local = local_path(artifact_uri)
    if local is None:
        return None
    dest = (local.expanduser() / "plots").resolve()
    db = sqlite_path(resolve_tracking_uri(tracking_uri))
    where = f"run {run_id} keeps its artifacts at {artifact_uri!r}"
    if db is not None:
        store = db.expanduser().resolve().parent
        if not dest.is_relative_to(store):
            raise ConfigError(
                "RUN_ID", f"{where}, outside the store's directory {str(store)!r}: plots are written only inside it"
            )
    above = first_existing(dest)
    if not above.is_dir() or not os.access(above, os.W_OK | os.X_OK):
        raise ConfigError("RUN_ID", f"{where}: {str(above)!r} is not a directory this user can write")
    if db is None and above.stat().st_uid != os.getuid():
        raise ConfigError("RUN_ID", f"{where}: {str(above)!r} belongs to another user; plots are not written there")
    return dest


def _remove_partial(dest: Path, drawn: list[Path]) -> None:
    """After a failed copy into ``dest``: remove every copy shorter than its drawing, raise naming it."""
    for src in drawn:
        copy = dest / src.name
        if copy.exists() and copy.stat().st_size != src.stat().st_size:
            copy.unlink()
            raise PinnlabError(f"could not write the plot {str(copy)!r} in full; it was removed")


def plot_run(run_id: str, tracking_uri: str | None = None) -> list[str]:
    """Draw and log the plots of run ``run_id``; returns where they are: absolute local paths when
    the run's artifacts are local, else their artifact URIs."""
    from pinnlab.plots import plot_history

    c = open_client(tracking_uri)
    try:
        run = c.get_run(run_id)
    except Exception as exc:  # MLflow's "run not found" is an MlflowException with a long message
        raise ConfigError("RUN_ID", f"{run_id!r} is not a run of this MLflow store ({type(exc).__name__})") from None
    dest = check_destination(run_id, run.info.artifact_uri, tracking_uri)
    history = run_history(tracking_uri, run_id, run.info.artifact_uri)
    if history is None or not len(history):
        raise ConfigError("RUN_ID", f"run {run_id} has no history to plot")
    tags, metrics = run.data.tags, run.data.metrics
    summary: dict = {name: tags.get(name) for name in FIELD if name in tags and tags.get(name) != "none"}
    for name in INT_FIELDS:
        if f"summary/{name}" in metrics:
            summary[name] = int(metrics[f"summary/{name}"])
    summary.setdefault("problem", tags.get("problem"))
    with tempfile.TemporaryDirectory(prefix="pinnlab-plots-") as tmp:
        try:
            paths = plot_history(history, summary, Path(tmp) / "plots")
        except OSError as exc:  # a full temporary directory: nothing was logged
            raise PinnlabError(f"{exc.strerror or exc}; nothing was logged") from None
        for drawn in paths if dest is not None else []:  # a link would be written through
            if (dest / drawn.name).is_symlink():
                raise ConfigError(
                    "RUN_ID", f"{str(dest / drawn.name)!r} is a link; plots are not written through links"
                )
        try:
            c.log_artifacts(run_id, str(Path(tmp) / "plots"), artifact_path="plots")
        except OSError as exc:  # a full disk under the artifact store
            if dest is not None:
                _remove_partial(dest, paths)
            where = str(dest or run.info.artifact_uri)
            raise PinnlabError(f"could not log the plots to {where!r} ({exc.strerror or exc})") from None
    if dest is not None:  # local artifacts: where the files are on this machine
        return [str(dest / Path(p).name) for p in paths]
    return [f"{run.info.artifact_uri.rstrip('/')}/plots/{Path(p).name}" for p in paths]
