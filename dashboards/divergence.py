"""The divergence dashboard of a study (``pinnlab dashboard STUDY``): six views, one HTML file.

=====================  ==========================================================================
``heatmap``            divergence rate over two factors (default: the two most important by
                       :func:`pinnlab.analysis.divergence_importance`); each cell says its rate
                       and its number of trials
``trajectories``       ``weight_norm/total`` and ``grad_norm/total`` against step, log y, one line
                       per trial coloured by outcome; × marks the NaN onset (at the last finite
                       value), ○ the step at which blowup / unbounded was detected
``nan_onset``          histogram of the NaN onset step, stacked by the kind of the first
                       non-finite tensor (``weight/``, ``grad/``, ``loss/``, ``deriv/`` ...)
``parallel``           parallel coordinates of the swept parameters and the outcome, one line per
                       trial coloured by outcome; categorical parameters are encoded as their
                       choice index (labelled), log-sampled ones as log10
``grad_terms``         distribution of ``grad_norm/<term>`` (residual vs boundary ...) over every
                       diagnostics step, per loss term and outcome, log y
``causes``             trials per cause found (:mod:`pinnlab.training.causes`), stacked by outcome; each
                       trial's causes are also in its hover text in ``trajectories``
=====================  ==========================================================================

Data come only from :mod:`pinnlab.analysis` (``load_study_data``, ``compare``, ``importance``).
:func:`build` first passes every string of the study through :func:`pinnlab.dashboards.page.text`
(:func:`escaped`): a study may come from anywhere, and its names, choices, attributes, run tags,
metric keys and store URLs then reach every title, label, hover text and summary line escaped,
whichever view shows them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pinnlab.analysis import compare, importance
from pinnlab.analysis.causes import causes_by_outcome
from pinnlab.analysis.frames import (
    StudyData,
    check_factors,
    default_dashboard_path,
    load_study_data,
)
from pinnlab.core.outcomes import DIVERGENT, Outcome
from pinnlab.core.preflight import check_output_file
from pinnlab.dashboards.boundary import boundary_panels, log_placement
from pinnlab.dashboards.page import Panel, text, write_page

__all__ = ["OUTCOME_COLORS", "METRICS", "escaped", "panels", "build", "write_dashboard"]

OUTCOME_COLORS = {str(o): o.colour for o in Outcome}
OUTCOME_ORDER = list(OUTCOME_COLORS)
TRAJECTORIES = ("weight_norm/total", "grad_norm/total")
METRICS = [*TRAJECTORIES, "grad_norm/*"]  # the history the dashboard reads
MAX_POINTS = 400  # per trajectory: enough for the shape, keeps the page light with many trials
_LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=30, t=50, b=60), font=dict(size=13))


def _outcomes(trials: pd.DataFrame) -> list[str]:
    present = set(trials["outcome"].dropna())
    return [o for o in OUTCOME_ORDER if o in present] + sorted(present - set(OUTCOME_ORDER))


def _color(outcome: str) -> str:
    return OUTCOME_COLORS.get(outcome, "#17becf")


def _params_text(row: pd.Series, factors: Sequence[str]) -> str:
    return "<br>".join(f"{f} = {row[f]}" for f in factors)


def _empty(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=15))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ----------------------------------------------------------------------------------------- views
def heatmap(data: StudyData, a: str, b: str | None) -> go.Figure:
    """Divergence rate per (level of a, level of b); ``b=None`` for a study with one factor."""
    t = compare.judged(data.trials)
    fig = go.Figure(layout=dict(**_LAYOUT))
    if t.empty:
        return _empty(fig, "no trial has an outcome yet")
    la = compare.factor_levels(t, a, data.space.get(a))
    lb = (
        compare.factor_levels(t, b, data.space.get(b))
        if b
        else pd.Series(pd.Categorical(["all"] * len(t)), index=t.index)
    )
    xs, ys = list(la.cat.categories), list(lb.cat.categories)
    z = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    for (va, vb), group in t.groupby([la, lb], observed=True):
        i, j = ys.index(vb), xs.index(va)
        n, d = len(group), int(group["outcome"].isin(DIVERGENT).sum())
        z[i, j] = d / n
        text[i][j] = f"{d / n:.0%}<br>{d}/{n}"
    fig.add_trace(
        go.Heatmap(
            x=[compare.level_label(v) for v in xs],  # as the report prints them
            y=[compare.level_label(v) for v in ys],
            z=z,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=14),
            zmin=0,
            zmax=1,
            colorscale=[[0, "#2ca02c"], [0.5, "#f2d43d"], [1, "#d62728"]],
            colorbar=dict(title=dict(text="diverged"), tickformat=".0%"),
            hovertemplate=f"{a} = %{{x}}<br>{b or ''} = %{{y}}<br>diverged %{{text}}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(title=a, type="category")
    fig.update_yaxes(title=b or "", type="category")
    return fig


def _thin(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(steps) <= MAX_POINTS:
        return steps, values
    idx = np.unique(np.linspace(0, len(steps) - 1, MAX_POINTS).astype(int))
    return steps[idx], values[idx]


def trajectories(data: StudyData) -> go.Figure:
    """Weight and gradient norm against step, per trial, log y, coloured by outcome."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(TRAJECTORIES), horizontal_spacing=0.08)
    fig.update_layout(**_LAYOUT, legend=dict(title="outcome", groupclick="togglegroup"))
    h = data.history if data.history is not None else pd.DataFrame(columns=["trial", "metric", "step", "value"])
    trials = data.trials.set_index("trial")
    shown: set[str] = set()
    marks: set[str] = set()
    by_key = {k: g for k, g in h[h["metric"].isin(TRAJECTORIES)].groupby(["trial", "metric"])}
    for col, metric in enumerate(TRAJECTORIES, start=1):
        for trial, row in trials.iterrows():
            g = by_key.get((trial, metric))
            if g is None:
                continue
            g = g.sort_values("step")
            ok = np.isfinite(g["value"].to_numpy()) & (g["value"].to_numpy() > 0)
            steps, values = g["step"].to_numpy()[ok], g["value"].to_numpy()[ok]
            if not len(steps):
                continue
            outcome = row["outcome"] or "unfinished"
            hover = f"trial {trial} ({outcome})<br>{_params_text(row, data.factors)}"
            if row.get("cause_names"):
                hover += f"<br>causes: {row['cause_names']}"
            if row.get("risk_names"):
                hover += f"<br>risks (it worked): {row['risk_names']}"
            xs, ys = _thin(steps, values)
            fig.add_trace(
                go.Scatter(  # a trial that stopped at step 0 has one point: a dot, not an invisible line
                    x=xs,
                    y=ys,
                    mode="lines" if len(xs) > 1 else "markers",
                    marker=dict(size=7),
                    line=dict(color=_color(outcome), width=1.5),
                    opacity=0.8,
                    name=outcome,
                    legendgroup=outcome,
                    showlegend=outcome not in shown,
                    hovertemplate=f"{hover}<br>step %{{x}}<br>{metric} %{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            shown.add(outcome)
            for column, symbol, label in (
                ("nan_onset_step", "x", "NaN onset"),
                ("divergence_step", "circle-open", "divergence detected"),
            ):
                step = row[column]
                if pd.isna(step) or (label != "NaN onset" and outcome not in (Outcome.BLOWUP, Outcome.UNBOUNDED)):
                    continue
                before = steps <= int(step)
                y = values[before][-1] if before.any() else values[0]
                fig.add_trace(
                    go.Scatter(
                        x=[int(step)],
                        y=[y],
                        mode="markers",
                        marker=dict(
                            symbol=symbol,
                            size=13,
                            color="black" if symbol == "x" else _color(outcome),
                            line=dict(width=2, color="black" if symbol == "x" else _color(outcome)),
                        ),
                        name=label,
                        legendgroup=label,
                        showlegend=label not in marks,
                        hovertemplate=f"trial {trial}: {label} at step {int(step)}"
                        + (f"<br>first non-finite: {row['first_nonfinite']}" if label == "NaN onset" else "")
                        + "<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
                marks.add(label)
    if not shown:
        return _empty(fig, "no history: were the trials tracked in MLflow?")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="norm (log)", row=1, col=1)
    fig.update_xaxes(title_text="step")
    return fig


def nan_onset(data: StudyData) -> go.Figure:
    """Histogram of NaN onset steps, stacked by the first non-finite tensor's kind."""
    t = data.trials[data.trials["nan_onset_step"].notna()]
    fig = go.Figure(layout=dict(**_LAYOUT, barmode="stack", showlegend=True, legend=dict(title="first non-finite")))
    if t.empty:
        detected = data.trials["divergence_step"].dropna()
        extra = (
            f" (other divergence detected at steps {int(detected.min())}-{int(detected.max())})"
            if len(detected)
            else ""
        )
        return _empty(fig, "no trial went NaN" + extra)
    kind = t["first_nonfinite"].fillna("unknown").astype(str).str.split("/").str[0]
    steps = t["nan_onset_step"].astype(int)
    lo, hi = int(steps.min()), int(steps.max())
    size = max(1, math.ceil((hi - lo + 1) / 30))  # at most ~30 bins of whole steps
    start = lo - lo % size
    for k in sorted(kind.unique()):
        fig.add_trace(
            go.Histogram(
                x=steps[kind == k],
                name=f"{k}/…",
                xbins=dict(start=start - 0.5, end=hi + size, size=size),
                hovertemplate="steps %{x}<br>%{y} trials<extra>" + k + "</extra>",
            )
        )
    # at least 10 bins wide, so that a single onset step is a bar, not the whole plot
    fig.update_xaxes(title="NaN onset step", range=[start - 0.5, max(hi + size, start + 10 * size) - 0.5])
    fig.update_yaxes(title="trials", dtick=1 if len(t) <= 10 else None, rangemode="tozero")
    return fig


def _dimension(data: StudyData, f: str, values: pd.Series) -> dict:
    spec = data.space.get(f, {})
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if spec.get("choices") is not None or not numeric:
        choices = list(spec.get("choices") or sorted(values.dropna().unique(), key=str))
        index = {str(c): i for i, c in enumerate(choices)}
        codes = values.map(lambda v: index.get(str(v), np.nan))
        return dict(
            label=f,
            values=codes,
            tickvals=list(range(len(choices))),
            ticktext=[compare.level_label(c) for c in choices],
            range=[-0.3, len(choices) - 0.7],
        )
    placed = log_placement(values, spec)  # log10, with a 0 one decade below the smallest value
    if placed is not None:
        return dict(label=f"{f} (log10)", **placed)
    return dict(label=f, values=values.astype(float))


def parallel(data: StudyData) -> go.Figure:
    """Parallel coordinates of the parameters and the outcome, lines coloured by outcome."""
    t = data.trials[data.trials["outcome"].notna()]
    fig = go.Figure(layout=dict(**_LAYOUT))
    if t.empty or not data.factors:
        return _empty(fig, "no trial has an outcome yet")
    outcomes = _outcomes(t)
    code = t["outcome"].map({o: i for i, o in enumerate(outcomes)}).astype(float)
    k = len(outcomes)
    if k == 1:
        scale = [[0, _color(outcomes[0])], [1, _color(outcomes[0])]]
    else:  # one flat band of colour per outcome code
        scale = []
        for i, o in enumerate(outcomes):
            scale += [[i / k, _color(o)], [(i + 1) / k, _color(o)]]
    dims = [_dimension(data, f, t[f]) for f in data.factors]
    dims.append(dict(label="outcome", values=code, tickvals=list(range(k)), ticktext=outcomes, range=[-0.3, k - 0.7]))
    fig.add_trace(
        go.Parcoords(
            line=dict(color=code, colorscale=scale, cmin=-0.5, cmax=k - 0.5),
            dimensions=dims,
            labelangle=0,
            labelfont=dict(size=13),
        )
    )
    fig.update_layout(margin=dict(l=80, r=80, t=70, b=40))
    return fig


def grad_terms(data: StudyData) -> go.Figure:
    """Box plots of grad_norm/<term> per loss term (x) and outcome (colour), log y."""
    fig = go.Figure(layout=dict(**_LAYOUT, boxmode="group", legend=dict(title="outcome")))
    h = data.history
    if h is None or h.empty:
        return _empty(fig, "no history: were the trials tracked in MLflow?")
    metric = h["metric"]
    terms = metric.str.startswith("grad_norm/") & (metric.str.count("/") == 1) & (metric != "grad_norm/total")
    sel = h[terms & np.isfinite(h["value"]) & (h["value"] > 0)]
    if sel.empty:
        return _empty(fig, "no per-term gradient norms (grad_norm/<term>) in the history")
    sel = sel.merge(data.trials[["trial", "outcome"]], on="trial")
    names = sorted(sel["metric"].unique())
    for outcome in _outcomes(sel):
        g = sel[sel["outcome"] == outcome]
        fig.add_trace(
            go.Box(
                x=g["metric"].str.removeprefix("grad_norm/"),
                y=g["value"],
                name=outcome,
                marker_color=_color(outcome),
                boxpoints="outliers",
                hovertemplate="%{x}: %{y:.3g}<extra>" + outcome + "</extra>",
            )
        )
    fig.update_xaxes(
        title="loss term", categoryorder="array", categoryarray=[n.removeprefix("grad_norm/") for n in names]
    )
    fig.update_yaxes(title="‖∇ weighted term‖ (log)", type="log", exponentformat="power")
    return fig


# ---------------------------------------------------------------------------------------- the page
def causes(data: StudyData) -> go.Figure:
    """Trials per cause found, one bar per cause, stacked by outcome."""
    fig = go.Figure()
    fig.update_layout(
        **_LAYOUT, barmode="stack", xaxis_title="cause", yaxis_title="trials", legend=dict(title="outcome")
    )
    counts = causes_by_outcome(data.trials)
    if counts.empty:
        return _empty(fig, "no causes found in these trials")
    for outcome in _outcomes(data.trials):
        g = counts[counts["outcome"] == outcome]
        if len(g):
            fig.add_trace(
                go.Bar(
                    x=g["cause"],
                    y=g["n"],
                    name=outcome,
                    marker_color=_color(outcome),
                    hovertemplate="%{x}: %{y} trials<extra>" + outcome + "</extra>",
                )
            )
    return fig


def panels(data: StudyData, factors: Sequence[str] | None = None) -> tuple[list[Panel], list[str]]:
    """The five panels, and the page's summary lines."""
    imp = importance.divergence_importance(data.trials, data.factors, data.space)
    pair = check_factors(data, factors) if factors else importance.top_factors(imp, 2)
    a, b = (list(pair) + [None, None])[:2]  # fewer than two factors (none: a study without trials)
    overall = compare.divergence_overall(data.trials)
    rate = "-" if not overall["n"] else f"{overall['rate']:.0%}"
    outcomes = ", ".join(f"{k} {v}" for k, v in compare.outcome_counts(data.trials).items())
    informative = ", ".join(f"{r.factor} ({r.importance:.2f})" for r in imp.itertuples() if r.importance > 0)
    chance = ", ".join(str(r.factor) for r in imp.itertuples() if not r.importance > 0)
    ranked = "; ".join(filter(None, [informative, chance and f"no more than chance (≤ 0, no information): {chance}"]))
    summary = [
        f"{len(data.trials)} trials; outcomes: {outcomes or '-'}; "
        f"divergent ({'/'.join(str(o) for o in Outcome if o in DIVERGENT)}): {overall['diverged']} of {overall['n']} ({rate})",
        f"what drives divergence (chance-adjusted uncertainty coefficient, 1 = decides it): {ranked or '-'}",
        f"optuna: <code>{data.storage}</code>; mlflow: <code>{data.tracking_uri or '-'}</code> "
        f"(parent run <code>{data.parent_run_id or '-'}</code>)",
    ]
    out = []
    if a is not None:
        out.append(
            Panel(
                "heatmap",
                f"Divergence rate: {a} × {b}" if b else f"Divergence rate by {a}",
                "Share of trials that diverged (diverging, nan, blowup or unbounded) in each cell, with diverged/total. "
                + (
                    "Factors chosen with <code>--factors</code>."
                    if factors
                    else "The two most important factors (pick others with <code>--factors A B</code>)."
                )
                + " Red cells with several trials are the settings to avoid; a row or column that is red throughout"
                " means that factor alone drives it.",
                heatmap(data, a, b),
                height=440,
            )
        )
    out += [
        Panel(
            "trajectories",
            "Weight-norm and gradient-norm trajectories",
            "One line per trial (log y). A straight rising weight norm is exponential growth (blowup); "
            "× marks the step whose update went non-finite, ○ where blowup/unbounded was detected. "
            "Compare the slopes of the divergent lines with the stable ones: the report's weight-growth table "
            "gives the same slope as numbers.",
            trajectories(data),
            height=480,
        ),
        Panel(
            "nan_onset",
            "NaN onset step",
            "When trials went NaN, stacked by the first non-finite tensor (weight/: the update overflowed; "
            "grad/: the gradient; loss/, residual/, deriv/: the forward pass). Onsets at step 0 mean "
            "the setting is unusable from the start (e.g. the learning rate).",
            nan_onset(data),
            height=380,
        ),
        Panel(
            "parallel",
            "Parameters and outcome (parallel coordinates)",
            "One line per trial, coloured by outcome. Drag along an axis to select a range; categorical "
            "parameters are shown by choice, log-sampled ones in log10.",
            parallel(data),
            height=460,
        ),
        Panel(
            "grad_terms",
            "Gradient norm per loss term",
            "Distribution of <code>grad_norm/&lt;term&gt;</code> over every diagnostics step, per term and outcome. "
            "A term whose gradient is orders of magnitude above the others (residual vs boundary) dominates "
            "training; divergent runs often show it growing.",
            grad_terms(data),
            height=420,
        ),
        Panel(
            "causes",
            "Causes found, per outcome",
            "How many trials each cause (rule, evidence and remedy in docs/verdicts.md) was found in, stacked "
            "by outcome. A cause found mostly in divergent trials is the one to remedy first.",
            causes(data),
            height=380,
        ),
    ]
    out += boundary_panels(data, imp["factor"].tolist())  # survival, aligned, boundary_plane
    return out, summary


def _escape(value: Any) -> Any:
    """Strings (also inside lists, tuples and dicts) through :func:`text`; numbers, None as they are."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_escape(v) for v in value)
    if isinstance(value, dict):
        return {_escape(k): _escape(v) for k, v in value.items()}
    return value


def _escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.rename(columns=_escape)
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.StringDtype):
            out[column] = out[column].map(_escape)
    return out


def escaped(data: StudyData) -> StudyData:
    """A copy of ``data`` in which every string is :func:`text` (the store URLs with their passwords
    hidden first): what the views build from it is markup, safe in the page and in plotly's text.

    Escaping is one-to-one, so choices still match trial values and factor names still match
    columns; numbers are left alone, so every computation gives what it gives on ``data``."""
    return dataclasses.replace(
        data,
        name=text(data.name),
        storage=text(data.shown(data.storage)),
        tracking_uri=None if data.tracking_uri is None else text(data.shown(data.tracking_uri)),
        parent_run_id=_escape(data.parent_run_id),
        direction=_escape(data.direction),
        objective=_escape(data.objective),
        factors=[_escape(f) for f in data.factors],
        space=_escape(data.space),
        trials=_escape_frame(data.trials),
        history=None if data.history is None else _escape_frame(data.history),
        notes=[_escape(n) for n in data.notes],
    )


def build(data: StudyData, factors: Sequence[str] | None = None) -> tuple[str, list[str], list[Panel]]:
    """(title, summary lines, panels) of a loaded study, all markup around escaped text (:func:`escaped`)."""
    data = escaped(data)
    ps, summary = panels(data, None if factors is None else [text(f) for f in factors])
    return f"pinnlab divergence dashboard: {data.name}", summary, ps


def write_dashboard(
    study_name: str,
    out: str | Path | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    factors: Sequence[str] | None = None,
) -> Path:
    """Load the study, build the dashboard and write it (default ``<store>/dashboards/<study>.html``).

    The destination is checked first (:func:`pinnlab.core.preflight.check_output_file`): a page never
    replaces a file pinnlab did not write as a page, such as the study's own journal."""
    path = check_output_file("--out", out or default_dashboard_path(study_name))
    data = load_study_data(study_name, storage, tracking_uri, metrics=METRICS)
    if factors:
        check_factors(data, factors)
    title, summary, ps = build(data, factors)
    return write_page(path, title, summary, ps).resolve()
