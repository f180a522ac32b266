"""Where and when training diverges: three panels of the divergence dashboard.

=====================  ==========================================================================
``survival``           Kaplan-Meier curves of P(no divergence by step t) per level of the most
                       important factor, with their 95 % bands; runs that did not diverge are
                       censored at their last step (:mod:`pinnlab.analysis.survival`)
``aligned``            the divergent trials' ``weight_norm/total`` and ``grad_norm/total`` with
                       x = step - detection step (0 = the step divergence was detected, negative =
                       steps before it), log y: what every failure looked like on its way there
``boundary_plane``     every seed in the plane (numeric factor x, group factor), coloured by
                       diverged or not, with the estimated critical value per level and its
                       bootstrap interval drawn over it (:mod:`pinnlab.analysis.boundary`)
=====================  ==========================================================================

Called from :func:`dashboards.divergence.panels`; data only through :mod:`pinnlab.analysis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pinnlab.analysis import boundary, survival
from pinnlab.analysis.compare import factor_levels, level_label
from pinnlab.analysis.frames import StudyData
from pinnlab.core.outcomes import Outcome
from pinnlab.dashboards.page import Panel

__all__ = ["survival_figure", "aligned_figure", "boundary_figure", "boundary_panels", "log_placement"]

ALIGNED = ("weight_norm/total", "grad_norm/total")
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=30, t=50, b=60), font=dict(size=13))


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=15))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def log_placement(values: pd.Series | np.ndarray, spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where a numeric factor's values go on a log10 axis, or None when a linear one suits it.

    Log when the stored spec is ``log: true`` or the positive values span more than a factor of 100
    (or of 10 beside a 0, which a linear axis would draw on top of the smallest values: an L2
    coefficient of 0, 1e-4 and 1e-2).  A 0 has no logarithm: it is placed one decade below the
    smallest positive value, under its own tick ``0``.  Returns ``values`` (positions), ``tickvals``
    and ``ticktext`` (decades as ``1e-4``, and ``0``).
    """
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    positive = finite[finite > 0]
    if not len(positive) or (finite < 0).any():
        return None
    span = positive.max() / positive.min()
    zero = bool((finite == 0).any())
    if not ((spec or {}).get("log") or span > 100 or (zero and span >= 10)):
        return None
    lo, hi = np.floor(np.log10(positive.min())), np.ceil(np.log10(positive.max()))
    at_zero = lo - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.where(x == 0, at_zero, np.nan))
    ticks = list(np.arange(lo, hi + 1))
    text = [f"1e{int(v)}" for v in ticks]
    if zero:
        ticks, text = [at_zero, *ticks], ["0", *text]
    return dict(values=pos, tickvals=ticks, ticktext=text)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def survival_figure(data: StudyData, factor: str | None) -> go.Figure:
    """Step-function KM curves per level of ``factor`` (all units when None), with bands."""
    fig = go.Figure(layout=dict(**_LAYOUT, legend=dict(title=factor or "")))
    factors = [factor] if factor else []
    u = survival.units(data.trials, factors)
    if u.empty:
        return _empty(fig, "no trial has an outcome yet")
    by = None if factor is None else factor_levels(u, factor, data.space.get(factor))
    rows, curves = survival.km_table(u, by)
    for i, (row, c) in enumerate(zip(rows, curves)):
        colour = PALETTE[i % len(PALETTE)]
        name = f"{c['level']} ({row['diverged']}/{row['n']} diverged)"
        fig.add_trace(
            go.Scatter(
                x=c["step"] + c["step"][::-1],
                y=c["high"] + c["low"][::-1],
                fill="toself",
                line=dict(width=0, shape="hv"),
                fillcolor=_rgba(colour, 0.15),
                hoverinfo="skip",
                legendgroup=c["level"],
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=c["step"],
                y=c["survival"],
                mode="lines",
                line=dict(color=colour, shape="hv", width=2),
                name=name,
                legendgroup=c["level"],
                hovertemplate=f"{c['level']}<br>step %{{x}}<br>S %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="P(no divergence yet)", range=[0, 1.05])
    return fig


def aligned_figure(data: StudyData) -> go.Figure:
    """Norms of the divergent trials against steps before the detection step."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(ALIGNED), horizontal_spacing=0.08)
    fig.update_layout(**_LAYOUT, legend=dict(title="outcome"))
    h = data.history
    t = data.trials[data.trials["outcome"].map(lambda o: (Outcome.parse(o) or Outcome.CRASH).divergent)]
    if h is None or h.empty or t.empty:
        return _empty(fig, "no divergent trial with a history")
    shown: set[str] = set()
    for col, metric in enumerate(ALIGNED, start=1):
        sel = h[h["metric"] == metric]
        for row in t.itertuples(index=False):
            at = row.divergence_step if not pd.isna(row.divergence_step) else row.nan_onset_step
            g = sel[sel["trial"] == row.trial].sort_values("step")
            v = g["value"].to_numpy(float)
            ok = np.isfinite(v) & (v > 0) & (g["step"].to_numpy() <= (at if not pd.isna(at) else np.inf))
            if pd.isna(at) or not ok.any():
                continue
            colour = Outcome(row.outcome).colour
            fig.add_trace(
                go.Scatter(
                    x=g["step"].to_numpy()[ok] - int(at),
                    y=v[ok],
                    mode="lines+markers",
                    marker=dict(size=4),
                    line=dict(color=colour, width=1.5),
                    opacity=0.8,
                    name=row.outcome,
                    legendgroup=row.outcome,
                    showlegend=row.outcome not in shown,
                    hovertemplate=f"trial {row.trial}<br>%{{x}} steps<br>%{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            shown.add(row.outcome)
    if not shown:
        return _empty(fig, "no divergent trial with a history")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_xaxes(title_text="steps relative to detection (0 = detected)")
    return fig


def boundary_figure(data: StudyData, ranked: Sequence[str]) -> go.Figure:
    """Seeds in the (numeric factor, group) plane with the estimated critical value per level."""
    fig = go.Figure(layout=dict(**_LAYOUT, legend=dict(title="")))
    u = survival.units(data.trials, data.factors)
    numeric = boundary.numeric_factors(u, data.factors) if not u.empty else []
    if not numeric:
        return _empty(fig, "no numeric factor with outcomes to place a boundary on")
    x = next((f for f in ranked if f in numeric), numeric[0])
    group = boundary.group_factor(ranked, data.space, x)
    levels = u[group].map(level_label) if group else pd.Series("(all)", index=u.index)  # as boundary_rows
    order = sorted(levels.unique())
    ypos = levels.map({lvl: i for i, lvl in enumerate(order)}).to_numpy(float)
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(u))  # fixed: the page is reproducible
    raw = u[x].to_numpy(float)
    placed = log_placement(raw, data.space.get(x))  # log10 positions (0 apart) drawn on a linear axis

    def at(v: np.ndarray) -> np.ndarray:
        if placed is None:
            return v
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), placed["tickvals"][0])

    xpos = raw if placed is None else placed["values"]
    for event, name, colour in (
        (False, "did not diverge", Outcome.STABLE.colour),
        (True, "diverged", Outcome.NAN.colour),
    ):
        m = (u["event"] == event).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=xpos[m],
                y=ypos[m] + jitter[m],
                mode="markers",
                name=name,
                marker=dict(color=colour, size=7, opacity=0.7),
                customdata=raw[m],
                hovertemplate=f"{x} %{{customdata:.3g}}<extra>{name}</extra>",
            )
        )
    for row in boundary.boundary_rows(u, x, group, data.space):
        if row["critical"] is None:
            continue
        i = order.index(row["level"])
        c = float(at(np.array([row["critical"]]))[0])
        err = {}
        if row["low"] is not None:
            lo, hi = (float(at(np.array([row[k]]))[0]) for k in ("low", "high"))
            err = dict(
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=[hi - c],
                    arrayminus=[c - lo],
                    thickness=2,
                    width=8,
                    color="black",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[c],
                y=[i],
                mode="markers",
                name="P = 0.5 (95% interval)",
                marker=dict(symbol="line-ns-open", size=26, color="black", line=dict(width=3)),
                showlegend=i == 0,
                legendgroup="critical",
                **err,
                customdata=[row["critical"]],
                hovertemplate=f"{row['level']}: critical {x} %{{customdata:.3g}}<extra></extra>",
            )
        )
    if placed is None:
        fig.update_xaxes(title=x, type="linear", exponentformat="power")
    else:
        fig.update_xaxes(
            title=f"{x} (log scale)", type="linear", tickvals=placed["tickvals"], ticktext=placed["ticktext"]
        )
    fig.update_yaxes(
        title=group or "", tickvals=list(range(len(order))), ticktext=order, range=[-0.6, len(order) - 0.4]
    )
    return fig


def boundary_panels(data: StudyData, ranked: Sequence[str]) -> list[Panel]:
    """The three panels; ``ranked``: the factors, most important first (the survival panel splits by the first)."""
    top = ranked[0] if ranked else None
    return [
        Panel(
            "survival",
            f"Time to divergence (Kaplan-Meier){f' by {top}' if top else ''}",
            "P(a run has not diverged by step t), one curve per level with its 95% band; runs that did not diverge "
            "count until their last step (censored), not as never-failing. A curve that drops early and low: "
            "that level fails fast and often; the report's <code>survival</code> section has the median step.",
            survival_figure(data, top),
            height=420,
        ),
        Panel(
            "aligned",
            "Trajectories aligned at divergence",
            "Divergent trials only, x = steps before the detection step (0). Growth that starts long before 0 "
            "could have been caught earlier; a jump within the last steps could not.",
            aligned_figure(data),
            height=440,
        ),
        Panel(
            "boundary_plane",
            "Estimated divergence boundary",
            "Every seed (jittered vertically) by the numeric factor and the most important categorical one; the "
            "black bar is where the fitted P(divergent) = 0.5, with its bootstrap interval (report section "
            "<code>boundary</code>). Seeds of both colours on the same side of a bar: a wide, seed-dependent edge.",
            boundary_figure(data, ranked),
            height=420,
        ),
    ]
