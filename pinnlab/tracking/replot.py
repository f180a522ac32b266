"""Plots of a recorded run, drawn on demand: ``pinnlab plots RUN_ID``.

Why: a sweep trial of 50 steps trains in about the time its plots take to draw (~1 s, several on a
loaded machine), so sweep trials no longer draw them (their ``history.csv``, metrics and tags are
logged as before); this draws a run's ``plots/*.png`` from its logged history and tags, and logs
them to the same run, whenever someone wants to look.  ``pinnlab run`` still draws them itself (on a
background thread, :mod:`pinnlab.tracking.background`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pinnlab.errors import ConfigError
from pinnlab.summary import FIELD, INT_FIELDS
from pinnlab.tracking.reader import run_history
from pinnlab.tracking.store import client as open_client

__all__ = ["plot_run"]


def plot_run(run_id: str, tracking_uri: str | None = None) -> list[str]:
    """Draw and log the plots of run ``run_id``; returns the artifact paths written."""
    from pinnlab.plots import plot_history

    c = open_client(tracking_uri)
    try:
        run = c.get_run(run_id)
    except Exception as exc:  # MLflow's "run not found" is an MlflowException with a long message
        raise ConfigError("RUN_ID", f"{run_id!r} is not a run of this MLflow store ({type(exc).__name__})") from None
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
        paths = plot_history(history, summary, Path(tmp) / "plots")
        c.log_artifacts(run_id, str(Path(tmp) / "plots"), artifact_path="plots")
    return [f"plots/{Path(p).name}" for p in paths]
