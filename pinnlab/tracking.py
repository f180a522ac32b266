"""MLflow tracking: one MLflow run per training run (the only module of pinnlab that imports mlflow).

Where runs go
-------------
The tracking URI is, in order: an explicit ``tracking_uri`` (``pinnlab run --tracking-uri``), the
environment variable ``MLFLOW_TRACKING_URI``, else an embedded store that needs no server: the
directory :func:`default_store` (``$PINNLAB_HOME`` if set, else ``./pinnlab-runs`` in the current
working directory) holding ``mlflow.db`` (SQLite, ``sqlite:///<abs>/mlflow.db``) and
``artifacts/`` (the experiment's ``artifact_location``).  For any other ``sqlite:///`` URI the
artifacts go next to the database file (``<db dir>/artifacts``); for servers the server decides.
Every function takes the URI explicitly and uses its own ``MlflowClient``: no global MLflow state
(``mlflow.set_tracking_uri``, active runs) is touched, so several trackers can coexist in one process.

What a run records (:class:`RunTracker`)
----------------------------------------
* params: the resolved config, flattened to dotted keys (``model.width``); values are YAML/JSON
  scalars (``true``, ``null``, ``0.001``), so ``--set key=value`` reproduces them.
* tags at start: ``problem``, any caller tags (swept factors, study, trial number, ...),
  ``mlflow.parentRunId`` for a child run; at the end: ``outcome``, ``reason``, ``nan_onset_step``,
  ``first_nonfinite``, ``divergence_step``, ``stopped_by`` (a callback such as a sweep pruner
  ended the run; all four ``"none"`` when there is none), ``diverged`` (``true``/``false``) and
  ``warnings`` (one per line, ``""`` for none).  Run status: FINISHED
  whenever training returned (a diverged run is a result: its outcome is a tag), KILLED on
  ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one by the CLI), FAILED with tag ``error``
  on any other exception; the exception is always re-raised.
* metrics: the per-step metrics (``loss/*``, ``grad_norm/total``, ``weight_norm/total``,
  ``lambda/*``) every ``metric_every`` steps and on the last step, and every diagnostics row
  (``grad_norm/<term>``, per-layer norms, ``deriv/*``, ``update_ratio/*``, ``error/rel_l2``), each
  with its step.  Non-finite values are never logged (MLflow stores NaN badly); the NaN onset is a
  tag.  ``summary/<name>`` holds the finite summary numbers of :meth:`RunResult.summary`
  (``summary/final_loss``, ``summary/rel_l2_error``, ``summary/weight_norm_ratio``,
  ``summary/steps_run``, ``summary/wall_seconds``, ..., ``summary/nan_onset_step`` when there is one).
* artifacts: ``config.yaml`` (at start), ``history.csv`` (every step, every column) and
  ``plots/*.png`` (:func:`pinnlab.plots.plot_history`).

Metrics are buffered and written with ``log_batch`` in chunks of at most 1000
(``MAX_METRICS_PER_BATCH``), whenever ``flush_every`` values are waiting or ``flush_seconds``
passed since the last write (so the MLflow UI follows a long run), and at the end.  A failed
periodic write is retried at the next one with a warning; training does not stop for it.

Why ``metric_every = 20``, and what tracking costs
--------------------------------------------------
Measured with ``benchmarks/tracking_overhead.py`` (JSON in ``benchmarks/results/``) on 2 shared
cores (load average 3.6-5.2 from other jobs during the runs), TF 2.21, MLflow 3.17, SQLite:

* Writing one metric value costs ~135 µs in isolation (``log_batch`` of 1000) and 126-190 µs of
  CPU inside a training process.  MLflow's asynchronous logging (``synchronous=False``) was slower
  still (its writer thread competes with the training loop for the GIL), so writes are synchronous.
* ``seed-fixed``, the fastest preset (~1.8 ms/step, 5 per-step metrics, ~17 diagnostics values per
  100 steps), over its 36,000 steps (64 s untracked): every step would be ~186,000 values,
  23-35 s, i.e. 35-55% of the run; every 10th step ~24,000 values (~11%); every 20th step 15,110
  values, measured 7.0% wall (paired median of 3 interleaved runs; 3.1% in process CPU), of which
  the tracker's own time was 5.6 s (medians: 3.4 s writing metrics during training, 2.6 s at
  the end for the last metrics, history.csv of 36,000 rows, the PNGs and the status).  A stride of
  20 still gives 1,800 points per curve on that run; ``history.csv`` keeps every step, and the
  diagnostics rows are always logged in full.
* ``poisson2d`` for 1,000 steps (33 s): 6.2% wall, 7.0% CPU (tracker 1.4 s, 1.2 s of it at the end).
* Short runs are dominated by the fixed end-of-run cost of ~1.5-2 s (the PNGs ~1 s, the rest
  history.csv, artifacts and the final write): ``seed-fixed`` for 3,600 steps (6.8 s) costs 28%
  wall.  The 10% budget therefore holds for runs of ~20 s and longer; for sweeps of very short
  trials pass ``plots=False`` (saves ~1 s per run) and plot the interesting trials afterwards.

One-time costs per process, not per run: ``import mlflow`` ~1.8 s, and creating a new SQLite
store ~3 s of schema migrations (the first run in a directory).
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import logging
import math
import numbers
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from pinnlab.config import RunConfig, flatten
from pinnlab.errors import ConfigError, first_line
from pinnlab.training.callbacks import Callback

__all__ = [
    "RunTracker",
    "default_store",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "artifact_root_for",
    "get_or_create_experiment",
    "start_parent_run",
    "end_run",
    "set_tags",
    "ui_command",
    "child_runs",
    "check_parent_run",
    "close_runs",
    "run_history",
]

log = logging.getLogger(__name__)

STORE_DIRNAME = "pinnlab-runs"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
NONE = "none"  # tag value for "no such step / tensor" (tags are strings; "" reads as missing)


# --------------------------------------------------------------------------------------- the store
def default_store() -> Path:
    """The embedded store's directory: ``$PINNLAB_HOME`` if set, else ``./pinnlab-runs`` (absolute)."""
    home = os.environ.get("PINNLAB_HOME")
    return Path(home).expanduser().resolve() if home else (Path.cwd() / STORE_DIRNAME).resolve()


def default_tracking_uri() -> str:
    """``sqlite:///<abs>/mlflow.db`` inside :func:`default_store`."""
    return f"sqlite:///{(default_store() / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI`` if set, else :func:`default_tracking_uri`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _uri_source(uri: str | None) -> str:
    """Which setting a tracking URI came from (for error messages)."""
    if uri:
        return "--tracking-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "PINNLAB_HOME" if os.environ.get("PINNLAB_HOME") else "tracking store"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where new experiments keep artifacts: ``<db dir>/artifacts`` for a SQLite file, else None.

    None leaves the choice to MLflow (a tracking server's ``--default-artifact-root``).  A path,
    not a URI, because MLflow resolves local paths itself.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
        if db and db != ":memory:":
            return str((Path(db).expanduser().resolve().parent / "artifacts"))
    return None


def _client(tracking_uri: str | None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def get_or_create_experiment(client: mlflow.MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created with ``artifact_location=artifact_root`` if missing.

    Safe when several processes (sweep workers) create it at once.  A deleted experiment is an
    error: MLflow keeps its name reserved.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_root)
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # created concurrently by another process
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise ConfigError(
            "--experiment",
            f"experiment {name!r} is deleted in {client.tracking_uri}; restore it "
            f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or choose another name",
        )
    return exp.experiment_id


def ui_command(tracking_uri: str) -> str:
    """How to look at the runs: the MLflow UI on this store (a server serves its own UI)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri}"


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


def _tag_value(value: Any) -> str:
    text = NONE if value is None else str(value)
    return text[:MAX_TAG_VAL_LENGTH]


def _tags(mapping: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(str(k), _tag_value(v)) for k, v in mapping.items()]


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _log_params_and_tags(
    client: mlflow.MlflowClient,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """``log_batch`` within MLflow's limit of 100 params and 100 tags per call."""
    ps = [Param(str(k), _param_value(v)) for k, v in (params or {}).items()]
    for chunk in _chunks(ps, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk, synchronous=True)
    for chunk in _chunks(_tags(tags or {}), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk, synchronous=True)


def _set_terminated(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    """End a run.  For a tracking server MLflow prints "View run ... at: URL" on stdout, which is
    pinnlab's own (``--json`` prints exactly one object there): that line is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status=status)


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _base_tags() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    from pinnlab import __version__

    return {
        "mlflow.user": user,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": "pinnlab",
        "pinnlab.version": __version__,
    }


# ------------------------------------------------------------------------------------ the tracker
class RunTracker(Callback):
    """Records one training run in MLflow; a context manager and a trainer callback.

    ::

        tracker = RunTracker(cfg, tags={"study": "lr-sweep", "trial": 3}, parent_run_id=parent)
        with tracker:  # the run exists (RUNNING) from here on
            result = Trainer(cfg, callbacks=[progress, tracker]).fit()
        tracker.run_id  # FINISHED; KILLED on KeyboardInterrupt; FAILED (tag `error`) otherwise

    ``metric_every``: per-step metrics are logged every that many steps (and on the last step);
    diagnostics rows always.  Why the default is 20: see the module docstring.
    ``flush_every`` / ``flush_seconds``: write buffered metrics once that many values are waiting
    or that many seconds have passed since the last write.  ``plots``: log the PNGs of
    :mod:`pinnlab.plots` (~1 s at the end of every run: turn off for sweeps of very short trials).
    """

    def __init__(
        self,
        config: RunConfig,
        tracking_uri: str | None = None,
        experiment: str = "pinnlab",
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        *,
        metric_every: int = 20,
        flush_every: int = 5000,
        flush_seconds: float = 30.0,
        plots: bool = True,
    ):
        if metric_every < 1:
            raise ValueError(f"`metric_every >= 1` must hold, but got ({metric_every=}).")
        self.config = config
        self._uri_arg = tracking_uri
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.run_name = run_name
        self.metric_every = metric_every
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.plots = plots
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.client: mlflow.MlflowClient | None = None
        self._buffer: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
        self._last_flush = time.monotonic()
        self._step_names: list[str] | None = None
        self._last_step_logged = -1
        self._last_diag_logged = -1
        self._ended = False

    # ---------------------------------------------------------------- context manager
    def __enter__(self) -> RunTracker:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, Exception):
            self.end("FAILED", error=f"{exc_type.__name__}: {exc}")
        else:  # KeyboardInterrupt (Ctrl-C, SIGTERM via the CLI), SystemExit
            self.end("KILLED")
        return False

    def start(self) -> str:
        """Create the run (status RUNNING), log params, start tags and ``config.yaml``."""
        if self.run_id is not None:
            raise RuntimeError(f"this RunTracker already recorded run {self.run_id}; create one tracker per run")
        try:
            self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
            self.experiment_id = get_or_create_experiment(
                self.client, self.experiment, artifact_root_for(self.tracking_uri)
            )
        except ConfigError:
            raise
        except Exception as exc:  # unusable store: bad scheme, unwritable path, unreachable server
            raise ConfigError(
                _uri_source(self._uri_arg), f"cannot open the MLflow store {self.tracking_uri!r} ({first_line(exc)})"
            ) from exc
        tags = {**_base_tags(), "problem": self.config.problem.name, **self.tags}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        # create_run takes the first 100 tags; the rest go through log_batch
        items = list(tags.items())
        run = self.client.create_run(
            self.experiment_id,
            tags={k: _tag_value(v) for k, v in items[:MAX_PARAMS_TAGS_PER_BATCH]},
            run_name=self.run_name,
        )
        self.run_id = run.info.run_id
        try:
            _log_params_and_tags(
                self.client, self.run_id, flatten(self.config.to_dict()), dict(items[MAX_PARAMS_TAGS_PER_BATCH:])
            )
            self.client.log_text(self.run_id, self.config.to_yaml(), "config.yaml")
        except BaseException as exc:  # `with` does not call __exit__ when __enter__ raises
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._last_flush = time.monotonic()
        return self.run_id

    def end(self, status: str, error: str | None = None) -> None:
        """Write what is buffered and terminate the run with ``status``; never raises while an
        exception is already propagating (failures here are logged instead)."""
        if self.run_id is None or self._ended:
            return
        self._ended = True
        try:
            self.flush()
            if error is not None:
                line = error.strip().splitlines()[0] if error.strip() else error
                self.client.set_tag(self.run_id, "error", _tag_value(line))
        except Exception as exc:  # keep going: the status matters more than the last metrics
            log.warning("tracking: could not write the last metrics of run %s (%s)", self.run_id, exc)
        try:
            _set_terminated(self.client, self.run_id, status)
        except Exception as exc:
            if status == "FINISHED":
                raise
            log.warning("tracking: could not mark run %s %s (%s)", self.run_id, status, exc)

    def describe(self) -> str:
        """One line: the run id, the store and how to look at it."""
        return f"tracked: run {self.run_id} in {self.tracking_uri} ({ui_command(self.tracking_uri)})"

    # ---------------------------------------------------------------- metric buffer
    def _add(self, step: int, metrics: Mapping[str, float], keys: Iterable[str] | None = None) -> None:
        ts = int(time.time() * 1000)
        buf = self._buffer
        for key in metrics if keys is None else keys:
            value = metrics[key]
            if _finite(value):
                buf.append((key, float(value), ts, int(step)))
        if len(buf) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            try:
                self.flush()
            except Exception as exc:  # a locked or busy store must not stop the training
                log.warning("tracking: writing %d metric values failed (%s); retrying later", len(buf), exc)
                self._last_flush = time.monotonic()

    def flush(self) -> None:
        """Write the buffered metric values (``log_batch`` in chunks of ``MAX_METRICS_PER_BATCH``)."""
        while self._buffer:
            chunk = self._buffer[:MAX_METRICS_PER_BATCH]
            self.client.log_batch(
                self.run_id, metrics=[Metric(metric_key(k), v, ts, s) for k, v, ts, s in chunk], synchronous=True
            )
            del self._buffer[: len(chunk)]
        self._last_flush = time.monotonic()

    # ---------------------------------------------------------------- callback
    def on_train_begin(self, trainer) -> None:
        if self.run_id is None:
            raise RuntimeError("RunTracker must be entered (`with tracker:`) before training starts")
        self._step_names = list(trainer.step_names)

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if step % self.metric_every == 0:
            self._last_step_logged = step
            self._add(step, metrics)

    def on_diagnostics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._last_diag_logged = step
        self._add(step, metrics)

    def on_train_end(self, result) -> None:
        summary = result.summary()
        history = result.history
        if len(history):  # the last row: the final state, or the NaN step the callbacks never saw
            last = int(history.index[-1])
            row = history.iloc[-1].to_dict()
            step_cols = [c for c in (self._step_names or row) if c in row]
            keys = [] if last == self._last_step_logged else list(step_cols)
            if last != self._last_diag_logged:
                keys += [c for c in row if c not in step_cols]
            self._add(last, row, keys)
        final_step = max(result.steps_run - 1, 0)
        numbers = {f"summary/{k}": v for k, v in summary.items() if k != "final_metrics"}
        self._add(final_step, numbers)
        self.flush()
        tags = {
            "outcome": result.outcome,
            "reason": result.reason,
            "nan_onset_step": result.nan_onset_step,
            "first_nonfinite": result.first_nonfinite,
            "divergence_step": result.divergence_step,
            "diverged": str(result.diverged).lower(),
            "stopped_by": getattr(result, "stopped_by", None),
            "warnings": "\n".join(result.warnings),
        }
        _log_params_and_tags(self.client, self.run_id, tags=tags)
        self._log_artifacts(result, summary)

    def _log_artifacts(self, result, summary: Mapping[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="pinnlab-artifacts-") as tmp:
            tmp = Path(tmp)
            # float32 values print exactly with 9 significant digits (half the size of repr)
            fmt = "%.9g" if self.config.model.dtype == "float32" else None
            result.history.to_csv(tmp / "history.csv", index_label="step", float_format=fmt)
            self.client.log_artifact(self.run_id, str(tmp / "history.csv"))
            if not self.plots:
                return
            try:
                from pinnlab.plots import plot_history

                plot_dir = tmp / "plots"
                plot_history(result.history, summary, plot_dir)
            except Exception as exc:  # a plot is a convenience; the run's data is already logged
                log.warning("tracking: plotting run %s failed (%s: %s)", self.run_id, type(exc).__name__, exc)
                self.client.set_tag(self.run_id, "plot_error", _tag_value(f"{type(exc).__name__}: {exc}"))
                return
            self.client.log_artifacts(self.run_id, str(plot_dir), artifact_path="plots")


# --------------------------------------------------------------------------- helpers for sweeps
def start_parent_run(
    tracking_uri: str | None,
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """Create a RUNNING run (e.g. one per study) to hang trial runs under; returns its id.

    Trials pass it as ``RunTracker(..., parent_run_id=...)``; finish it with :func:`end_run`.
    """
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = get_or_create_experiment(client, experiment, artifact_root_for(uri))
    run_id = client.create_run(exp_id, tags=dict(_base_tags()), run_name=run_name).info.run_id
    _log_params_and_tags(client, run_id, params or {}, tags or {})
    return run_id


def end_run(tracking_uri: str | None, run_id: str, status: str = "FINISHED") -> None:
    """Terminate a run: ``status`` is FINISHED, FAILED or KILLED."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"`status` must be one of {', '.join(TERMINAL_STATUSES)}, but got {status!r}.")
    _set_terminated(_client(tracking_uri), run_id, status)


def set_tags(tracking_uri: str | None, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a run (values stringified, ``None`` as ``"none"``, truncated to MLflow's limit)."""
    _log_params_and_tags(_client(tracking_uri), run_id, tags=tags)


def log_files(tracking_uri: str | None, run_id: str, paths: Iterable[Path], artifact_path: str | None = None) -> None:
    """Log existing files as artifacts of a run (e.g. a reproduction's figures)."""
    client = _client(tracking_uri)
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path=artifact_path)


def log_metrics(tracking_uri: str | None, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log finite scalar metrics of a run in one batch (non-finite values are skipped)."""
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if _finite(v)]
    if batch:
        _client(tracking_uri).log_batch(run_id, metrics=batch)


# ----------------------------------------------------------------- read helpers (pinnlab.analysis)
def _parent_run(tracking_uri: str | None, parent_run_id: str):
    """(client, parent run) of a sweep; a ConfigError naming the setting when the store or the run
    is missing (the wrong store was given)."""
    uri = resolve_tracking_uri(tracking_uri)
    db = uri[len("sqlite:///") :].split("?", 1)[0] if uri.startswith("sqlite:///") else None
    if db and db != ":memory:" and not Path(db).expanduser().is_file():  # MLflow would create an empty one
        raise ConfigError(_uri_source(tracking_uri), f"no MLflow store at {uri!r}; pass the --tracking-uri the sweep used")
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        return client, client.get_run(parent_run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise ConfigError(
                _uri_source(tracking_uri), f"cannot read the MLflow store {uri!r} ({first_line(exc)})"
            ) from None
        raise ConfigError(
            _uri_source(tracking_uri),
            f"run {parent_run_id!r} (the study's parent run) is not in the MLflow store {uri!r}; "
            "pass the --tracking-uri the sweep used",
        ) from None
    except Exception as exc:  # unreachable server, unreadable file
        raise ConfigError(
            _uri_source(tracking_uri), f"cannot read the MLflow store {uri!r} ({first_line(exc)})"
        ) from None


def check_parent_run(tracking_uri: str | None, parent_run_id: str) -> None:
    """Fail early, as one line, when a worker cannot reach the store or its study's parent run."""
    _parent_run(tracking_uri, parent_run_id)


def child_runs(tracking_uri: str | None, parent_run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """Every run whose parent is ``parent_run_id`` (a sweep's trials), as plain dicts.

    Keys: ``run_id``, ``status``, ``tags``, ``params``, ``metrics`` (latest value of each) and
    ``artifact_uri``.  ``status`` (e.g. ``"RUNNING"``) keeps only runs in that status.  A parent
    id unknown to the store is a ConfigError (the wrong store was given).
    """
    client, parent = _parent_run(tracking_uri, parent_run_id)
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    if status is not None:
        query += f" and attributes.status = '{status}'"
    out, token = [], None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id], filter_string=query, max_results=1000, page_token=token
        )
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


def close_runs(
    tracking_uri: str | None, run_ids: Iterable[str], tags: Mapping[str, Any], status: str = "KILLED"
) -> list[str]:
    """Tag runs left behind by a dead or stopped process and end the RUNNING ones with ``status``.

    A run that already ended keeps its status (a worker that died after its trial's run finished
    produced a result; only the tags say what happened to the trial).  Returns the ids it ended.
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"`status` must be one of {', '.join(TERMINAL_STATUSES)}, but got {status!r}.")
    client = _client(tracking_uri)
    ended = []
    for run_id in dict.fromkeys(run_ids):
        _log_params_and_tags(client, run_id, tags=tags)
        if client.get_run(run_id).info.status == "RUNNING":
            _set_terminated(client, run_id, status)
            ended.append(run_id)
    return ended


def run_history(tracking_uri: str | None, run_id: str, artifact_uri: str | None = None):
    """A run's per-step history as a DataFrame indexed by ``step`` (one column per metric), or None.

    From the ``history.csv`` artifact (every step, every column), read in place when
    ``artifact_uri`` (the run's, see :func:`child_runs`) is a local directory, else downloaded; for
    a run without it (killed before the end) from MLflow's metric histories (logged every
    ``metric_every`` steps), leaving out ``summary/*``.
    """
    from urllib.parse import unquote, urlparse

    import pandas as pd

    if artifact_uri and ("://" not in artifact_uri or artifact_uri.startswith("file://")):
        local = Path(unquote(urlparse(artifact_uri).path) if "://" in artifact_uri else artifact_uri)
        if (local / "history.csv").is_file():
            return pd.read_csv(local / "history.csv", index_col="step")
    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="pinnlab-history-") as tmp:
        try:
            path = client.download_artifacts(run_id, "history.csv", tmp)
        except Exception:  # no such artifact (MlflowException, OSError): use the logged metrics
            path = None
        if path is not None:
            return pd.read_csv(path, index_col="step")
    keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith("summary/")]
    series = {}
    for key in keys:
        points = client.get_metric_history(run_id, key)
        series[key] = pd.Series({m.step: m.value for m in points}, dtype=float)
    if not series:
        return None
    frame = pd.DataFrame(series).sort_index()
    frame.index.name = "step"
    return frame
