"""Writing runs: one MLflow run per training run (:class:`RunTracker`), and a sweep's parent run.

What a run records
------------------
* name: what the run is, readable in the runs table (which cuts names to ~15 characters, so what
  tells runs apart comes first; :func:`run_label`).  A sweep trial's run (tag ``trial``): ``t7``
  (``t7s3`` for seed 3 of a replicated trial), then its outcome once known, then the swept values
  under abbreviations of their dotted paths' last part (``t7 nan lr=0.1 w=16``); any other run: its
  ``run_name`` (default: the config's name) and then its outcome (``seed nan``).  The name is set
  when the run starts and again, with the outcome, when training returns.
* params: the resolved config, flattened to dotted keys (``model.width``); values are YAML/JSON
  scalars (``true``, ``null``, ``0.001``), so ``--set key=value`` reproduces them.
* tags at start: ``problem``, any caller tags (swept factors, study, trial number, ...),
  ``mlflow.parentRunId`` for a child run; at the end: the summary fields marked ``tag`` in
  :mod:`pinnlab.core.summary` (``outcome``, ``reason``, ``nan_onset_step``, ``first_nonfinite``,
  ``divergence_step``, ``stopped_by``: ``"none"`` when there is none), ``diverged``
  (``true``/``false``) and ``warnings`` (one per line, ``""`` for none).  Run status: FINISHED
  whenever training returned (a diverged run is a result: its outcome is a tag), KILLED on
  ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one by the CLI) and when the stop
  watchdog of :mod:`pinnlab.core.signals` ends the process, FAILED with tag ``error`` on any other
  exception; the exception is always re-raised.
* metrics: the per-step metrics (``loss/*``, ``grad_norm/total``, ``weight_norm/total``,
  ``lambda/*``) every ``metric_every`` steps and on the last step, and every diagnostics row
  (``grad_norm/<term>``, per-layer norms, ``deriv/*``, ``update_ratio/*``, ``error/rel_l2``), each
  with its step.  Non-finite values are never logged (MLflow stores NaN badly); the NaN onset is a
  tag.  ``summary/<name>`` holds the finite numeric summary fields (``summary/final_loss``,
  ``summary/steps_run``, ..., ``summary/nan_onset_step`` when there is one).
* artifacts: ``config.yaml`` (at start), ``history.csv`` (every step, every column) and
  ``plots/*.png`` (:func:`pinnlab.plots.plot_history`; drawn on a background thread for sweep
  trials and ``pinnlab run``, see :mod:`pinnlab.tracking.background`).  With
  ``training.replicates > 1``: ``history.csv`` and the plots are the base seed's, and every seed's
  history is in ``replicates/seed-<seed>/history.csv`` (the per-seed summary rows are in
  ``pinnlab run --json``; ``summary/divergence_rate`` is a metric, ``outcome``/``reason`` tags).

Metrics are buffered and written with ``log_batch`` in chunks of at most 1000
(``MAX_METRICS_PER_BATCH``), whenever ``flush_every`` values are waiting or ``flush_seconds``
passed since the last write (so the MLflow UI follows a long run), and at the end.  A failed
periodic write is retried at the next one with a warning; training does not stop for it.  Writes
are synchronous: MLflow's asynchronous logging was slower here (its writer thread competes with
the training loop for the GIL).

Why ``metric_every = 20``: every step would cost a third to a half of a fast run's time in
writes; every 20th keeps the tracker near 7 % of the fastest preset's wall time and still gives
1,800 points per curve on it, while ``history.csv`` keeps every step.  The measurements and the
commands that produced them: docs/benchmarks.md, "Tracking overhead".
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunTag
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from pinnlab.config import RunConfig, flatten
from pinnlab.core.keys import (
    DIVERGED_TAG,
    ERROR_TAG,
    PARENT_RUN_TAG,
    PLOT_ERROR_TAG,
    PROBLEM_TAG,
    REPLICATE_TAG,
    TRIAL_TAG,
    WARNINGS_TAG,
)
from pinnlab.core.signals import checkpoint, on_abort, stop_grace
from pinnlab.core.summary import NUMERIC_FIELDS, TAG_FIELDS
from pinnlab.tracking.background import submit
from pinnlab.tracking.store import (
    STORE_FAILURES,
    base_tags,
    check_status,
    client,
    finite,
    log_params_and_tags,
    metric_key,
    open_experiment,
    set_terminated,
    tag_value,
)
from pinnlab.tracking.uri import resolve_tracking_uri, ui_command
from pinnlab.training.callbacks import Callback
from pinnlab.training.causes import cause_tags

__all__ = [
    "RunTracker",
    "start_parent_run",
    "end_run",
    "set_tags",
    "log_files",
    "log_metrics",
    "run_label",
    "abbreviations",
    "NAME_LIMIT",
]

log = logging.getLogger("pinnlab.tracking")

RUN_NAME_TAG = "mlflow.runName"  # MLflow's own: a write of it renames the run
NAME_LIMIT = 40  # characters of a run name: the runs table shows ~15, a run page's title about 40


def abbreviations(paths: Iterable[str]) -> dict[str, str]:
    """A short, unique label per dotted config path, derived from the path alone.

    The initials of the last part's words (``optimizer.learning_rate`` -> ``lr``,
    ``model.width`` -> ``w``; a last part of at most 3 characters stays whole: ``l2``); paths whose initials collide get the whole last part, and paths
    whose last parts collide too get as many trailing parts as tell them apart
    (``model.width`` / ``problem.params.width`` -> ``model.width`` / ``params.width``).
    """
    paths = list(dict.fromkeys(paths))

    def label(path: str, level: int) -> str:
        parts = path.split(".")
        if level == 0:
            words = [w for w in re.split(r"[^A-Za-z0-9]+", parts[-1]) if w]
            if len(words) == 1 and len(words[0]) <= 3:  # already short: `l2`, `lr`, `k`
                return words[0]
            return "".join(w[0] for w in words).lower() or parts[-1]
        return ".".join(parts[-level:])

    levels = dict.fromkeys(paths, 0)
    while True:
        labels = {p: label(p, levels[p]) for p in paths}
        seen: dict[str, list[str]] = {}
        for p, text in labels.items():
            seen.setdefault(text, []).append(p)
        clashes = [p for group in seen.values() if len(group) > 1 for p in group if levels[p] < len(p.split("."))]
        if not clashes:
            return labels
        for p in clashes:
            levels[p] += 1


def _short(value: Any) -> str:
    """A value as few characters as still tell it apart: 3 significant digits for a float
    (``0.1``, ``3.16e-4``), integers and words as they are (cut to 12 characters)."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text[:12]
    if not math.isfinite(number) or re.fullmatch(r"[+-]?\d+", text.strip()):
        return text.strip()[:12]
    short = f"{number:.3g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'' if m[1] == '+' else '-'}{m[2]}", short)


def run_label(
    stem: str | None,
    tags: Mapping[str, Any],
    factors: Iterable[str] = (),
    outcome: str | None = None,
    seed: Any = None,
) -> str:
    """A run's name (module docstring, "name"), at most :data:`NAME_LIMIT` characters.

    ``tags``: the run's start tags (``trial`` makes it a trial's run; ``replicate`` adds ``seed``);
    ``factors``: the dotted config paths among the tags, in the order of the search space (their
    values follow, as many as fit); ``outcome``: the run's outcome once known.
    """
    if tags.get(TRIAL_TAG) is None:
        return " ".join(filter(None, [(stem or "run")[: NAME_LIMIT - 16], outcome]))[:NAME_LIMIT]
    head = f"t{tags[TRIAL_TAG]}" + (f"s{seed}" if tags.get(REPLICATE_TAG) is not None and seed is not None else "")
    name = " ".join(filter(None, [head, outcome]))
    factors = [f for f in factors if f in tags]
    for path, short in abbreviations(factors).items():
        part = f" {short}={_short(tags[path])}"
        if len(name) + len(part) > NAME_LIMIT:
            break
        name += part
    return name[:NAME_LIMIT]


class RunTracker(Callback):
    """Records one training run in MLflow; a context manager and a trainer callback.

    ::

        tracker = RunTracker(cfg, tags={"study": "lr-sweep", "trial": 3}, parent_run_id=parent)
        with tracker:  # the run exists (RUNNING) from here on
            result = Trainer(cfg, callbacks=[progress, tracker]).fit()
        tracker.run_id  # FINISHED; KILLED on KeyboardInterrupt; FAILED (tag `error`) otherwise

    ``run_name``: the start of a run's name (default: the config's name); a sweep trial's run
    (tag ``trial``) is named after its trial number and swept values instead (:func:`run_label`).
    ``metric_every``: per-step metrics are logged every that many steps (and on the last step);
    diagnostics rows always.  Why the default is 20: see the module docstring.
    ``flush_every`` / ``flush_seconds``: write buffered metrics once that many values are waiting
    or that many seconds have passed since the last write.  ``plots``: log the PNGs of
    :mod:`pinnlab.plots` (~1 s at the end of every run); ``background_plots``: draw them on a
    background thread after the run is recorded (:mod:`pinnlab.tracking.background`).
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
        background_plots: bool = False,
    ):
        if metric_every < 1:
            raise ValueError(f"`metric_every >= 1` must hold, but got ({metric_every=}).")
        self.config = config
        self._uri_arg = tracking_uri
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self._stem = run_name or config.name or config.problem.name
        self._factors: list[str] = []
        self.run_name: str | None = None  # set by start(): run_label
        self.metric_every = metric_every
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.plots = plots
        self.background_plots = background_plots
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.client: mlflow.MlflowClient | None = None
        self._buffer: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
        self._last_flush = time.monotonic()
        self._step_names: list[str] | None = None
        self._last_step_logged = -1
        self._last_diag_logged = -1
        self._ended = False
        # held while the run is created and while it is ended: the stop watchdog's KILLED
        # (pinnlab.core.signals) and the main thread's own end never both write a final status
        self._end_lock = threading.Lock()
        self._abort_scope = contextlib.ExitStack()

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
        """Create the run (status RUNNING), log params, start tags and ``config.yaml``.

        A store that cannot be opened is a :class:`~pinnlab.core.errors.StoreError`, before any run exists.
        """
        if self.run_id is not None:
            raise RuntimeError(f"this RunTracker already recorded run {self.run_id}; create one tracker per run")
        self.client, self.experiment_id = open_experiment(self._uri_arg, self.experiment)
        checkpoint()  # a stop that came while the store opened: before the run exists
        tags = {**base_tags(), PROBLEM_TAG: self.config.problem.name, **self.tags}
        params = flatten(self.config.to_dict())
        self._factors = [k for k in self.tags if k in params]  # swept config paths among the tags
        self.run_name = self.label()
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        # create_run takes the first 100 tags; the rest go through log_batch
        items = list(tags.items())
        self._abort_scope.enter_context(on_abort(self._abort))
        with self._end_lock:
            try:
                run = self.client.create_run(
                    self.experiment_id,
                    tags={k: tag_value(v) for k, v in items[:MAX_PARAMS_TAGS_PER_BATCH]},
                    run_name=self.run_name,
                )
            except BaseException:
                self._abort_scope.close()
                raise
            self.run_id = run.info.run_id
        try:
            log_params_and_tags(self.client, self.run_id, params, dict(items[MAX_PARAMS_TAGS_PER_BATCH:]))
            self.client.log_text(self.run_id, self.config.to_yaml(), "config.yaml")
        except BaseException as exc:  # `with` does not call __exit__ when __enter__ raises
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._last_flush = time.monotonic()
        return self.run_id

    def end(self, status: str, error: str | None = None) -> None:
        """Write what is buffered and terminate the run with ``status``; never raises while an
        exception is already propagating (failures here are logged instead)."""
        with self._end_lock:
            if self.run_id is None or self._ended:
                return
            self._ended = True
            self._abort_scope.close()
            try:
                self.flush()
                if error is not None:
                    line = error.strip().splitlines()[0] if error.strip() else error
                    self.client.set_tag(self.run_id, ERROR_TAG, tag_value(line))
            except Exception as exc:  # anything: this may run while another exception propagates,
                # and the status matters more than the last metrics
                log.warning("tracking: could not write the last metrics of run %s (%s)", self.run_id, exc)
            try:
                set_terminated(self.client, self.run_id, status)
            except Exception as exc:  # anything, as above; a run that trained must not look finished
                if status == "FINISHED":
                    raise
                log.warning("tracking: could not mark run %s %s (%s)", self.run_id, status, exc)

    def _abort(self) -> str | None:
        """The stop watchdog's action (:func:`pinnlab.core.signals.on_abort`, on its own thread): end
        the run KILLED unless the main thread ended it or is ending it (then its status stands)."""
        if not self._end_lock.acquire(timeout=stop_grace()):
            return f"MLflow run {self.run_id} was being ended and may stay RUNNING"
        try:
            if self.run_id is None or self._ended:
                return None
            self._ended = True
            set_terminated(self.client, self.run_id, "KILLED")
            return f"MLflow run {self.run_id} KILLED"
        finally:
            self._end_lock.release()

    def label(self, outcome: str | None = None) -> str:
        """This run's name (:func:`run_label`), with ``outcome`` once training returned."""
        return run_label(self._stem, self.tags, self._factors, outcome, self.config.training.seed)

    def describe(self) -> str:
        """One line: the run id, the store and how to look at it."""
        return (
            f"tracked: run {self.run_id} in {self.tracking_uri} ({ui_command(self.tracking_uri, self.experiment_id)})"
        )

    # ---------------------------------------------------------------- metric buffer
    def _add(self, step: int, metrics: Mapping[str, float], keys: Iterable[str] | None = None) -> None:
        ts = int(time.time() * 1000)
        buf = self._buffer
        for key in metrics if keys is None else keys:
            value = metrics[key]
            if finite(value):
                buf.append((key, float(value), ts, int(step)))
        if len(buf) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            try:
                self.flush()
            except STORE_FAILURES as exc:  # a locked, busy or unreachable store must not stop the training
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
        self._add(final_step, {f"summary/{k}": summary[k] for k in NUMERIC_FIELDS})
        tags = {k: summary[k] for k in TAG_FIELDS}
        tags[DIVERGED_TAG] = str(result.diverged).lower()
        tags[WARNINGS_TAG] = "\n".join(result.warnings)
        tags.update(cause_tags(result.causes))  # cause.<name> = its evidence (pinnlab.training.causes)
        tags.update(cause_tags(result.risks, "risk"))  # risk.<name>: the same rules on a run that worked
        self.run_name = tags[RUN_NAME_TAG] = self.label(str(result.outcome))
        if len(self._buffer) <= MAX_METRICS_PER_BATCH and len(tags) <= MAX_PARAMS_TAGS_PER_BATCH:
            # the last metrics and the end tags in one write (a short sweep trial pays per call)
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(metric_key(k), v, ts, st) for k, v, ts, st in self._buffer],
                tags=[RunTag(str(k), tag_value(v)) for k, v in tags.items()],
                synchronous=True,
            )
            self._buffer.clear()
            self._last_flush = time.monotonic()
        else:
            self.flush()
            log_params_and_tags(self.client, self.run_id, tags=tags)
        self._log_artifacts(result, summary)

    def _log_artifacts(self, result, summary: Mapping[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="pinnlab-artifacts-") as tmp:
            tmp = Path(tmp)
            # float32 values print exactly with 9 significant digits (half the size of repr)
            fmt = "%.9g" if self.config.model.dtype == "float32" else None
            result.history.to_csv(tmp / "history.csv", index_label="step", float_format=fmt)
            self.client.log_artifact(self.run_id, str(tmp / "history.csv"))
            for rep in getattr(result, "replicate_results", None) or []:  # training.replicates > 1
                seed_dir = tmp / "replicates" / f"seed-{rep.config.training.seed}"
                seed_dir.mkdir(parents=True)
                rep.history.to_csv(seed_dir / "history.csv", index_label="step", float_format=fmt)
            if (tmp / "replicates").exists():
                self.client.log_artifacts(self.run_id, str(tmp / "replicates"), artifact_path="replicates")
        if not self.plots:
            return
        if self.background_plots:  # drawn while the next run trains (pinnlab.tracking.background)
            submit(lambda: self._log_plots(result.history, dict(summary)))
        else:
            self._log_plots(result.history, summary)

    def _log_plots(self, history, summary: Mapping[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="pinnlab-plots-") as tmp:
            try:
                from pinnlab.plots import plot_history

                plot_dir = Path(tmp) / "plots"
                plot_history(history, summary, plot_dir)
            except Exception as exc:  # any plotting failure: a plot is a convenience, the data is logged
                log.warning("tracking: plotting run %s failed (%s: %s)", self.run_id, type(exc).__name__, exc)
                self.client.set_tag(self.run_id, PLOT_ERROR_TAG, tag_value(f"{type(exc).__name__}: {exc}"))
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
    c, exp_id = open_experiment(tracking_uri, experiment)
    run_id = c.create_run(exp_id, tags=dict(base_tags()), run_name=run_name).info.run_id
    log_params_and_tags(c, run_id, params or {}, tags or {})
    return run_id


def end_run(tracking_uri: str | None, run_id: str, status: str = "FINISHED") -> None:
    """Terminate a run: ``status`` is FINISHED, FAILED or KILLED."""
    check_status(status)
    set_terminated(client(tracking_uri), run_id, status)


def set_tags(tracking_uri: str | None, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a run (values stringified, ``None`` as ``"none"``, truncated to MLflow's limit)."""
    log_params_and_tags(client(tracking_uri), run_id, tags=tags)


def log_files(tracking_uri: str | None, run_id: str, paths: Iterable[Path], artifact_path: str | None = None) -> None:
    """Log existing files as artifacts of a run (e.g. a reproduction's figures)."""
    c = client(tracking_uri)
    for p in paths:
        c.log_artifact(run_id, str(p), artifact_path=artifact_path)


def log_metrics(tracking_uri: str | None, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log finite scalar metrics of a run in one batch (non-finite values are skipped)."""
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if finite(v)]
    if batch:
        client(tracking_uri).log_batch(run_id, metrics=batch)
