"""What every reproduction shares: claims beside measurements, a session that trains and records.

A reproduction is a function ``run(session) -> None`` in its own module (``seed``, ``convection``,
``helmholtz``).  It trains through ``session.train(...)``, which records every training run as an
MLflow child run of one parent run per reproduction, prints one progress line per run, and returns
the :class:`~pinnlab.training.RunResult` together with the trainer (for weights and gradients).
It then adds :class:`Claim` rows (the published statement, its source, our measured figure, and
whether they agree) and JSON-ready figures (``session.parts``), and writes its PNG figures into
``session.out``.  The session turns all of that into a :class:`StudyResult`: ``table()`` for
people, ``to_dict()`` for ``--json`` and for the ``result.json`` artifact.

Verdicts are computed from the measured numbers against a stated criterion, never typed in: a
claim that does not reproduce says ``no`` with the number we got.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinnlab.config import load_config
from pinnlab.core.keys import MLFLOW_RUN_ID
from pinnlab.core.signals import Once, on_abort, stop_grace
from pinnlab.runs import Tracking, run_config
from pinnlab.tracking import end_run, log_files, log_metrics, resolve_tracking_uri, set_tags, start_parent_run

__all__ = ["Claim", "StudyResult", "Session", "agreement", "fmt", "span", "count_span"]


def agreement(ok: bool | None, partly: bool = False) -> str:
    """``yes`` / ``partly`` / ``no`` from a measured criterion (``None``: not measured)."""
    if ok is None:
        return "n/a"
    return "yes" if ok else ("partly" if partly else "no")


def fmt(x: Any, digits: int = 2) -> str:
    """Compact number for tables: ``0.0034`` -> ``3.4e-03``; ints as ints; None as ``-``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits + 1}g}" if abs(x) < 10 else f"{x:,.{max(digits - 1, 0)}f}"


def span(values: Sequence[float | None], digits: int = 2) -> str:
    """``min–max`` of the finite values (``-`` if none; one value if they are all equal)."""
    vals = [v for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return "-"
    if not all(isinstance(v, (int, np.integer)) for v in vals):
        vals = [float(v) for v in vals]
    lo, hi = min(vals), max(vals)
    return fmt(lo, digits) if fmt(lo, digits) == fmt(hi, digits) else f"{fmt(lo, digits)}–{fmt(hi, digits)}"


def count_span(values: Sequence[float | None], digits: int = 2) -> str:
    """``k/n seeds, at steps min–max``: how many runs have the step (e.g. reached NaN), and its span."""
    have = [v for v in values if v is not None]
    return f"{len(have)}/{len(values)} seeds" + (f", at steps {span(have, digits)}" if have else "")


def _json_ready(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_ready(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


@dataclass
class Claim:
    """One published statement beside what we measured."""

    part: str  # e.g. "a", "b", "beta=20"
    claim: str  # the statement, in the source's sense
    source: str  # short citation
    ours: str  # our measured figure, formatted
    reproduced: str  # yes / partly / no / n/a (from a criterion on the measured numbers)
    criterion: str = ""  # what "yes" required

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class StudyResult:
    name: str
    title: str
    source: str
    quick: bool
    claims: list[Claim] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # titled side-by-side tables
    runs: list[dict[str, Any]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    out: str = ""
    wall_seconds: float = 0.0
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["claims"] = [c.to_dict() for c in self.claims]
        return _json_ready(d)

    def table(self, width: int = 118) -> str:
        """Claim / source / ours / reproduced, wrapped to ``width`` columns, then where things are."""
        cols = [("part", 10), ("claim", 40), ("source", 18), ("ours", 36), ("reproduced", 10)]
        spare = max(0, width - sum(w for _, w in cols) - 3 * (len(cols) - 1))
        cols[1] = ("claim", cols[1][1] + spare // 2)
        cols[3] = ("ours", cols[3][1] + spare - spare // 2)
        sep = " | "

        def row(cells: Sequence[str]) -> list[str]:
            wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, cols)]
            height = max(map(len, wrapped))
            return [
                sep.join(f"{(w[i] if i < len(w) else ''):<{cw}}" for w, (_, cw) in zip(wrapped, cols)).rstrip()
                for i in range(height)
            ]

        lines = [f"{self.title}{' (quick variant)' if self.quick else ''}", f"source: {self.source}", ""]
        lines += row([c for c, _ in cols])
        lines.append("-+-".join("-" * w for _, w in cols))
        for c in self.claims:
            lines += row([c.part, c.claim, c.source, c.ours, c.reproduced])
        for title, rows in self.tables.items():
            import pandas as pd

            lines += ["", title, pd.DataFrame(rows).to_string(index=False)]
        lines.append("")
        lines.append(
            f"{len(self.runs)} training runs in {self.wall_seconds:.0f} s; figures and result.json in {self.out}"
        )
        for f in self.figures:
            lines.append(f"  {f}")
        if self.mlflow_run_id:
            lines.append(f"mlflow: {self.tracking_uri} (parent run {self.mlflow_run_id})")
        return "\n".join(lines)


class Session:
    """Trains the runs of one reproduction, records them, and collects the result.

    ``interrupt``: an optional object with ``deferred()`` (a context manager) that is also a trainer
    callback: the CLI's SIGTERM handler, so a terminated reproduction ends its runs KILLED.
    """

    def __init__(
        self,
        name: str,
        title: str,
        source: str,
        *,
        quick: bool,
        out: Path,
        tracking_uri: str | None,
        track: bool,
        progress: bool,
        interrupt: Any = None,
        command: str = "",
    ):
        self.result = StudyResult(name=name, title=title, source=source, quick=quick, out=str(out), command=command)
        self.quick = quick
        self.out = out
        self.track = track
        self.progress = progress
        self.interrupt = interrupt
        self.tracking_uri = tracking_uri
        self.parent: str | None = None
        self.experiment = "reproduce"
        self._t0 = time.time()

    # ------------------------------------------------------------------ collecting
    @property
    def parts(self) -> dict[str, Any]:
        return self.result.parts

    def claim(
        self, part: str, claim: str, source: str, ours: str, ok: bool | None, criterion: str = "", partly: bool = False
    ) -> None:
        self.result.claims.append(Claim(part, claim, source, ours, agreement(ok, partly), criterion))

    def table(self, title: str, rows: list[dict[str, Any]]) -> None:
        """A titled table printed after the claims (e.g. remedies side by side)."""
        self.result.tables[title] = rows

    def figure(self, path: Path) -> None:
        self.result.figures.append(str(path))

    def say(self, message: str) -> None:
        if self.progress:
            print(f"reproduce {self.result.name}: {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ running
    def __enter__(self) -> Session:
        self.out.mkdir(parents=True, exist_ok=True)
        # a run's warnings are in its result and its MLflow run; here they would repeat per run
        self._log = logging.getLogger("pinnlab")
        self._log_level = self._log.level
        self._log.setLevel(logging.ERROR)
        if self.track:
            self.tracking_uri = resolve_tracking_uri(self.tracking_uri)
            r = self.result
            self.parent = start_parent_run(
                self.tracking_uri,
                self.experiment,
                run_name=f"reproduce-{r.name}{'-quick' if r.quick else ''}",
                tags={"pinnlab.kind": "reproduction", "reproduction": r.name, "quick": str(r.quick).lower()},
                params={"study": r.name, "quick": r.quick, "source": r.source},
            )
            r.mlflow_run_id, r.tracking_uri = self.parent, self.tracking_uri
            self._parent_end = Once()  # the stop watchdog's KILLED or __exit__'s end, never both
            self._abort_scope = contextlib.ExitStack()
            self._abort_scope.enter_context(on_abort(self._kill_parent))
        return self

    def _kill_parent(self) -> str | None:
        """The stop watchdog's action: the parent run ends KILLED unless __exit__ ended it."""

        if not self._parent_end(lambda: end_run(self.tracking_uri, self.parent, "KILLED"), timeout=stop_grace()):
            return None
        return f"MLflow parent run {self.parent} KILLED"

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._log.setLevel(self._log_level)
        self.result.wall_seconds = time.time() - self._t0
        status = "FINISHED" if exc_type is None else ("FAILED" if issubclass(exc_type, Exception) else "KILLED")
        if exc_type is None:
            (self.out / "result.json").write_text(json.dumps(self.result.to_dict(), indent=2) + "\n")
            (self.out / "claims.txt").write_text(self.result.table() + "\n")
        if self.parent is not None:
            with self._abort_scope:
                if exc_type is None:
                    log_files(self.tracking_uri, self.parent, [self.out / "result.json", self.out / "claims.txt"])
                    log_files(self.tracking_uri, self.parent, [Path(f) for f in self.result.figures], "figures")
                    verdicts = [c.reproduced for c in self.result.claims]
                    set_tags(self.tracking_uri, self.parent, {v: verdicts.count(v) for v in ("yes", "partly", "no")})
                    log_metrics(self.tracking_uri, self.parent, {"wall_seconds": self.result.wall_seconds})
                self._parent_end(lambda: end_run(self.tracking_uri, self.parent, status))
        return False

    def config(self, source: Any, overrides: Mapping[str, Any] | Sequence[str] = ()):
        """A RunConfig from a preset/file/mapping and ``{dotted.key: value}`` overrides.

        A quick variant runs without the sharpness check (``diagnostics.sharpness=false``) unless the
        study asks for it: no claim reads it, and on runs of a few hundred steps its fixed cost was a
        third of the seed study's quick variant (83 s against 54 s, docs/reproductions.md).
        """

        if isinstance(overrides, Mapping):
            overrides = [f"{k}={_yaml_value(v)}" for k, v in overrides.items()]
        overrides = list(overrides)
        if self.quick and not any(o.startswith("diagnostics.sharpness=") for o in overrides):
            overrides.append("diagnostics.sharpness=false")
        return load_config(source, overrides)

    def train(
        self,
        cfg,
        label: str,
        *,
        part: str,
        weights: Sequence[np.ndarray] | None = None,
        extra: Callable[[Any, Any], Mapping[str, Any]] | None = None,
        before: Callable[[Any], None] | None = None,
    ):
        """Train ``cfg`` (a RunConfig) as one recorded run; returns ``(result, trainer)``.

        ``weights``: warm start.  ``before(trainer)``: look at the initial state (weights, gradients)
        before training.  ``extra(result, trainer)``: figures for the runs table.
        """

        seed = cfg.training.seed
        tracking = None
        if self.parent is not None:
            tracking = Tracking(
                tracking_uri=self.tracking_uri,
                experiment=self.experiment,
                parent_run_id=self.parent,
                tags={"reproduction": self.result.name, "part": part, "label": label, "seed": seed},
                run_name=f"{self.result.name}-{part}-{label}-seed{seed}",
                plots=False,  # the study's own figures are logged on the parent run
            )

        def prepare(trainer) -> None:
            if weights is not None:
                trainer.set_weights(weights)
            if before is not None:
                before(trainer)

        n = len(self.result.runs) + 1
        run = run_config(
            cfg,
            tracking=tracking,
            callbacks=[] if self.interrupt is None else [self.interrupt],
            prepare=prepare,
            guard=None if self.interrupt is None else self.interrupt.deferred(),
        )
        result, trainer = run.result, run.trainer
        row = {
            "part": part,
            "label": label,
            "seed": seed,
            "outcome": result.outcome,
            "steps_run": result.steps_run,
            "divergence_step": result.divergence_step,
            "nan_onset_step": result.nan_onset_step,
            "first_nonfinite": result.first_nonfinite,
            "final_loss": result.final_loss,
            "rel_l2_error": result.rel_l2_error,
            "weight_norm_ratio": result.weight_norm_ratio,
            "wall_seconds": result.wall_seconds,
            MLFLOW_RUN_ID: run.mlflow_run_id,
        }
        if extra is not None:
            row.update(extra(result, trainer))
        self.result.runs.append(_json_ready(row))
        events = []
        if result.divergence_step is not None:
            events.append(f"detected at step {result.divergence_step}")
        if result.nan_onset_step is not None:
            events.append(f"first non-finite at step {result.nan_onset_step}")
        when = f" ({', '.join(events)})" if events else ""
        err = "" if result.rel_l2_error is None else f", error {result.rel_l2_error:.3g}"
        self.say(
            f"run {n}: {run_label(part, label)} seed {seed}: {result.outcome}{when}{err} "
            f"({result.steps_run:,} steps, {result.wall_seconds:.1f} s; {time.time() - self._t0:.0f} s elapsed)"
        )
        return result, trainer


def run_label(part: str, label: str) -> str:
    """``part label`` as a run is named in the progress lines, without saying the part twice when
    the label repeats it (helmholtz's part "plain" with label "plain", ntk's "adam" with "adam-plain")."""
    return label if label.startswith(part) else f"{part} {label}"


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)
