"""PNG plots of a run's history: loss terms, weight norms, gradient norms, derivative magnitudes.

``plot_history(history, summary, out_dir)`` writes up to four PNGs and returns their paths:

=====================  =========================================================================
``losses.png``         ``loss/*`` per step.  Raw losses (``loss.formulation: raw``) go negative,
                       so when any value is ≤ 0 the y axis is symlog (linear within ±linthresh,
                       logarithmic outside, the threshold is printed in the axis label);
                       otherwise log.
``weight_norms.png``   ``weight_norm/*``: the global norm (every step) and each layer's kernel and
                       bias (every ``diagnostics.every`` steps); log y.
``grad_norms.png``     two panels, log y: per layer/variable ``grad_norm/<layer>/<var>``, and per
                       loss term ``grad_norm/<term>`` with the global ``grad_norm/total``.
``diagnostics.png``    when present: ``deriv/*`` (mean |·| of each derivative), ``update_ratio/*``
                       and ``error/rel_l2``; log y.
=====================  =========================================================================

Every panel marks the NaN onset step (red dashed line, labelled with the first non-finite tensor)
and the step at which divergence was detected (orange dotted line, labelled with the outcome).
Non-finite values are dropped before plotting (the NaN row is where the red line is); on log axes
non-positive values are dropped too.  Diagnostics columns are NaN between diagnostics steps, so
each column is plotted over its own finite rows.

Design note: matplotlib is used through ``matplotlib.figure.Figure`` and the Agg canvas directly,
never through ``pyplot``, so nothing here changes matplotlib's global backend or keeps figures in
pyplot's registry (equivalent to ``matplotlib.use("Agg")`` for our purposes, but without global
state: safe to call from a notebook with an interactive backend, or from several threads).

Cost (2 cores, matplotlib 3.11): ~0.8-1.2 s for the four files (~0.12 s per panel) on a few
thousand steps, ~1.4 s on 36,000.  Fixed margins instead of the constrained layout engine, plain
``1e-05`` tick labels instead of mathtext, no minor ticks, and lines of more than 2,000 points
drawn as the min and max of each bucket of steps (spikes survive; 36,000 raw points took twice
as long) brought it down from ~2.5 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_history"]

_DPI = 110
_PANEL = (8.0, 4.2)  # inches per panel: readable at 880x460 px
_MAX_POINTS = 2000  # per line: min/max of buckets beyond that (36,000 raw points cost ~3x the time)


def _series(history: pd.DataFrame, column: str, positive: bool) -> pd.Series:
    s = pd.to_numeric(history[column], errors="coerce")
    s = s[np.isfinite(s.to_numpy(dtype=float))]
    if positive:
        s = s[s > 0]
    return s


def _decimate(x: np.ndarray, y: np.ndarray, max_points: int = _MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``max_points`` points: each bucket of consecutive points keeps its min and its max
    (in step order), so spikes survive and the drawn line looks the same at PNG resolution."""
    n = len(x)
    if n <= max_points:
        return x, y
    k = math.ceil(n / (max_points // 2))
    m = n // k * k
    buckets = y[:m].reshape(-1, k)
    pair = np.sort(np.stack([buckets.argmin(axis=1), buckets.argmax(axis=1)], axis=1), axis=1)
    idx = np.concatenate([(pair + (np.arange(len(buckets)) * k)[:, None]).ravel(), np.arange(m, n)])
    return x[idx], y[idx]


def _columns(history: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in history.columns if c.startswith(prefix)]


def _mark_events(ax, summary: Mapping) -> None:
    nan_step = summary.get("nan_onset_step")
    if nan_step is not None:
        bad = summary.get("first_nonfinite") or "?"
        ax.axvline(nan_step, color="tab:red", ls="--", lw=1.2, label=f"NaN onset, step {nan_step} ({bad})")
    div_step = summary.get("divergence_step")
    if div_step is not None and div_step != nan_step:
        outcome = summary.get("outcome") or "diverged"
        ax.axvline(div_step, color="tab:orange", ls=":", lw=1.6, label=f"{outcome} detected, step {div_step}")


def _symlog_threshold(values: np.ndarray) -> float:
    """A power of ten near the small end of |values| (5th percentile of the non-zero ones)."""
    mags = np.abs(values[np.isfinite(values) & (values != 0)])
    if len(mags) == 0:
        return 1.0
    return float(10.0 ** math.floor(math.log10(np.percentile(mags, 5))))


def _symlog_ticks(values: np.ndarray, thr: float, max_per_side: int = 6) -> list[float]:
    """0 and ±powers of ten from ``thr`` to the data's extent, thinned to at most ``max_per_side``."""
    finite = values[np.isfinite(values)]
    lo_exp = math.floor(math.log10(thr))
    ticks = []
    crowded = False  # with many decades per tick, 0 and ±thr sit too close to label both
    for sign, extent in ((1.0, finite.max(initial=0.0)), (-1.0, -finite.min(initial=0.0))):
        if extent <= thr:
            continue
        hi_exp = math.ceil(math.log10(extent))
        stride = max(1, math.ceil((hi_exp - lo_exp + 1) / max_per_side))
        crowded |= stride > 2
        ticks += [sign * 10.0**e for e in range(lo_exp, hi_exp + 1, stride)]
    return sorted(ticks if crowded else [0.0, *ticks])


def _panel(ax, history: pd.DataFrame, columns: list[str], summary: Mapping, title: str, scale: str) -> bool:
    """Plot ``columns`` on ``ax``; ``scale`` is "log" or "auto" (log if all > 0, else symlog)."""
    if scale == "auto":
        values = np.concatenate([pd.to_numeric(history[c], errors="coerce").to_numpy(dtype=float) for c in columns])
        finite = values[np.isfinite(values)]
        scale = "log" if len(finite) and (finite > 0).all() else "symlog"
    drawn = False
    for c in columns:
        s = _series(history, c, positive=(scale == "log"))
        if len(s) == 0:
            continue
        style = {"marker": ".", "ms": 3} if len(s) < 0.5 * len(history) or len(s) < 50 else {}
        ax.plot(*_decimate(s.index.to_numpy(), s.to_numpy(dtype=float)), lw=1.0, label=c, **style)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    if scale == "symlog":
        thr = _symlog_threshold(values)
        ax.set_yscale("symlog", linthresh=thr)
        ax.set_yticks(_symlog_ticks(values, thr))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: "0" if v == 0 else f"{v:.0e}"))
        ax.set_ylabel(f"value (symlog: linear within ±{thr:.0e})")
        ax.axhline(0.0, color="0.6", lw=0.6)
        title += "  [negative values: raw loss]" if (values < 0).any() else "  [zeros present]"
    elif drawn:
        ax.set_yscale("log")
        ax.set_ylabel("value (log)")
        ax.yaxis.set_major_locator(ticker.LogLocator(numticks=8))
        ax.yaxis.set_major_formatter(ticker.LogFormatter())  # "1e-05": no mathtext parsing
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    _mark_events(ax, summary)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(True, which="major", alpha=0.3)
    if drawn or summary.get("nan_onset_step") is not None:
        ax.legend(fontsize=7, ncol=2 if len(columns) > 5 else 1, loc="best", framealpha=0.8)
    return drawn


def _figure(panels: int) -> tuple[Figure, list]:
    height = _PANEL[1] * panels
    fig = Figure(figsize=(_PANEL[0], height), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    # fixed margins (inches) instead of a layout engine: the engine doubled the drawing time
    fig.subplots_adjust(
        left=0.85 / _PANEL[0], right=1 - 0.15 / _PANEL[0], bottom=0.5 / height, top=1 - 0.35 / height, hspace=0.32
    )
    return fig, list(axes)


def _heading(summary: Mapping) -> str:
    problem = summary.get("problem") or "run"
    outcome = summary.get("outcome") or "?"
    return f"{problem}: outcome {outcome}"


def plot_history(history: pd.DataFrame, result_summary: Mapping, out_dir: Path) -> list[Path]:
    """Write the PNGs described in the module docstring into ``out_dir``; return their paths.

    ``history``: one row per step (index = step), one column per metric, as in
    :attr:`pinnlab.training.RunResult.history`.  ``result_summary``: ``RunResult.summary()`` (uses
    ``problem``, ``outcome``, ``nan_onset_step``, ``first_nonfinite``, ``divergence_step``).
    Plots without any matching column are skipped.  A PNG that cannot be written in full (a full
    disk, a file size limit) is removed and an OSError naming its file is raised: never a
    truncated image.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = _heading(result_summary)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = out_dir / name
        try:
            fig.savefig(path, dpi=_DPI)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise OSError(exc.errno, f"could not write the plot {str(path)!r} ({exc.strerror or exc})") from None
        written.append(path)

    losses = _columns(history, "loss/")
    if losses:
        fig, (ax,) = _figure(1)
        _panel(ax, history, losses, result_summary, f"{head} - loss terms", "auto")
        save(fig, "losses.png")

    weights = _columns(history, "weight_norm/")
    if weights:
        fig, (ax,) = _figure(1)
        _panel(ax, history, weights, result_summary, f"{head} - weight norms", "log")
        save(fig, "weight_norms.png")

    grads = _columns(history, "grad_norm/")
    per_layer = [c for c in grads if c.count("/") >= 2]  # grad_norm/<layer>/<kernel|bias>
    per_term = [c for c in grads if c not in per_layer]  # grad_norm/<term>, grad_norm/total
    if grads:
        groups = [(cols, t) for cols, t in ((per_layer, "per layer"), (per_term, "per loss term")) if cols]
        fig, axes = _figure(len(groups))
        for ax, (cols, what) in zip(axes, groups):
            _panel(ax, history, cols, result_summary, f"{head} - gradient norms {what}", "log")
        save(fig, "grad_norms.png")

    groups = [
        (cols, t)
        for cols, t in (
            (_columns(history, "deriv/"), "mean |derivative|"),
            (_columns(history, "update_ratio/"), "update ratio ||dW|| / ||W||"),
            (_columns(history, "error/"), "error vs exact solution"),
        )
        if cols
    ]
    if groups:
        fig, axes = _figure(len(groups))
        for ax, (cols, what) in zip(axes, groups):
            _panel(ax, history, cols, result_summary, f"{head} - {what}", "log")
        save(fig, "diagnostics.png")
    return written
