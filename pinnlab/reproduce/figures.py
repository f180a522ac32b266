"""The reproductions' PNG figures (matplotlib through ``Figure`` and the Agg canvas, as in
:mod:`pinnlab.plots`: no pyplot, no global backend change).

=============================  ==============================================================
``seed_weight_growth.png``     ‖W‖ per step of the question's runs (log y), and one run's
                               per-layer kernel and bias norms: exponential growth in lockstep
``seed_remedies.png``          u on the 60×60 grid for each remedy (first seed) beside the
                               solution the Dirichlet remedy determines: stable is not meaningful
``convection_error.png``       relative L2 error against β, plain vs curriculum, every seed
``convection_solutions.png``   u(x, t) of plain and curriculum training at the largest β and the
                               exact solution
``helmholtz_error.png``        relative L2 error per step of M1–M4 and the annealed boundary weight λ
``helmholtz_gradients.png``    per-layer histograms of ∂L_r/∂W against ∂(λ·L_bc)/∂W at step 0
                               and at the end of training (plain and annealed)
``causal_error.png``           relative L2 error per step, plain and causally weighted, and the
                               smallest causal weight
``optimizers_loss.png``        training loss and relative L2 error per row of the three optimizer
                               arms (Adam; Adam+L-BFGS; Adam+L-BFGS+Newton-CG), switches marked
=============================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pinnlab.plots import _decimate

__all__ = ["seed_figures", "convection_figures", "helmholtz_figures", "causal_figures", "optimizer_figures"]

_DPI = 110


def _figure(rows: int, cols: int, size: tuple[float, float] = (5.0, 3.8)) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(rows, cols)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def _line(ax, series, **kw) -> None:
    s = series.dropna()
    s = s[np.isfinite(s.to_numpy(dtype=float)) & (s.to_numpy(dtype=float) > 0)]
    if len(s):
        x, y = _decimate(s.index.to_numpy(), s.to_numpy(dtype=float))
        ax.plot(x, y, **kw)


def seed_figures(session, question: Sequence, pictures: Mapping[str, np.ndarray | None]) -> list[Path]:
    out = session.out
    paths = []
    fig, axes = _figure(1, 2)
    ax = axes[0, 0]
    for result, _trainer in question:
        seed = result.config.training.seed
        _line(ax, result.history["weight_norm/total"], label=f"seed {seed} ({result.outcome})")
        if result.nan_onset_step is not None:
            ax.axvline(result.nan_onset_step, color="tab:red", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("question: global weight norm ‖W‖ (red: first NaN)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    result, trainer = question[0]
    for name in trainer.var_names:
        _line(ax, result.history[f"weight_norm/{name}"], label=name, marker=".", ms=3)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"question, seed {result.config.training.seed}: per-layer norms")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "seed_weight_growth.png"))

    shown = [(k, v) for k, v in pictures.items()]
    cols = 3
    rows = -(-len(shown) // cols)
    fig, axes = _figure(rows, cols, (4.2, 3.6))
    ref = pictures["reference"]
    lim = float(np.abs(ref).max())
    for ax, (label, u) in zip(axes.ravel(), shown):
        if u is None:
            ax.text(0.5, 0.5, "diverged\n(no finite u)", ha="center", va="center", transform=ax.transAxes)
        else:
            im = ax.imshow(
                u.reshape(60, 60).T, origin="lower", extent=(-3, 2.9, -3, 2.9), cmap="RdBu_r", vmin=-lim, vmax=lim
            )
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_xlabel(f"std(u) = {np.std(u):.3g}", fontsize=8)
        title = "reference: u = x − y²/2 (Dirichlet data)" if label == "reference" else label
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    paths.append(_save(fig, out / "seed_remedies.png"))
    return paths


def convection_figures(
    session, rows: Sequence[Mapping], betas: Sequence[float], pictures: Mapping[str, np.ndarray]
) -> list[Path]:
    out = session.out
    paths = []
    fig, axes = _figure(1, 1, (6.5, 4.2))
    ax = axes[0, 0]
    for method, color, dx in (("plain", "tab:red", -0.4), ("curriculum", "tab:blue", 0.4)):
        pts = [(r["beta"], r["error"]) for r in rows if r["method"] == method and r["error"] is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.scatter(np.array(xs) + dx, ys, color=color, alpha=0.7, label=f"{method} (each seed)")
        med = [np.median([e for b, e in pts if b == beta] or [np.nan]) for beta in betas]
        ax.plot(betas, med, color=color, lw=1.2)
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="failure threshold 0.5")
    ax.set_yscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel("relative L2 error")
    ax.set_title("convection u_t + β u_x = 0, L-BFGS (lines: medians)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "convection_error.png"))

    shown = [k for k in ("exact", "plain", "curriculum") if k in pictures]
    if shown:
        fig, axes = _figure(1, len(shown), (4.2, 3.4))
        for ax, key in zip(axes.ravel(), shown):
            u = pictures[key].reshape(256, 100)  # eval grid: x (256) major, t (100) minor
            im = ax.imshow(
                u.T, origin="lower", aspect="auto", extent=(0, 2 * np.pi, 0, 1), cmap="RdBu_r", vmin=-1, vmax=1
            )
            ax.set_xlabel("x")
            ax.set_ylabel("t")
            ax.set_title(f"{key}, β = {betas[-1]:g}", fontsize=9)
        fig.subplots_adjust(left=0.05, right=0.9, bottom=0.15, top=0.9, wspace=0.25)
        fig.colorbar(im, cax=fig.add_axes((0.92, 0.15, 0.012, 0.75)))
        fig.savefig(out / "convection_solutions.png")
        paths.append(out / "convection_solutions.png")
    return paths


def helmholtz_figures(
    session, curves: Mapping, histograms: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]
) -> list[Path]:
    out = session.out
    paths = []
    fig, axes = _figure(1, 2)
    colors = {"plain": "tab:red", "annealing": "tab:blue", "modified": "tab:orange", "modified+annealing": "tab:green"}
    for (method, seed), h in curves.items():
        if "error/rel_l2" in h:
            _line(
                axes[0, 0],
                h["error/rel_l2"],
                color=colors[method],
                alpha=0.5 + 0.5 * (seed == 0),
                label=f"{method}, seed {seed}",
            )
        if "lambda/boundary" in h:
            _line(
                axes[0, 1],
                h["lambda/boundary"],
                color=colors[method],
                alpha=0.5 + 0.5 * (seed == 0),
                label=f"{method}, seed {seed}",
            )
    for ax, title in ((axes[0, 0], "relative L2 error"), (axes[0, 1], "annealed boundary weight λ")):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "helmholtz_error.png"))

    moments = list(histograms)
    layers = list(next(iter(histograms.values()))["residual"])
    fig, axes = _figure(len(layers), len(moments), (3.6, 2.3))
    for j, moment in enumerate(moments):
        grads = histograms[moment]
        for i, layer in enumerate(layers):
            ax = axes[i, j]
            res = np.log10(np.abs(grads["residual"][layer]) + 1e-30)
            bc = np.log10(np.abs(grads["boundary"][layer]) + 1e-30)
            lo = max(min(np.percentile(res, 1), np.percentile(bc, 1)), -12)
            hi = max(res.max(), bc.max())
            bins = np.linspace(lo, hi, 50)
            ax.hist(res, bins=bins, alpha=0.6, color="tab:blue", label="∂L_r/∂W", density=True)
            ax.hist(bc, bins=bins, alpha=0.6, color="tab:red", label="∂(λ·L_bc)/∂W", density=True)
            ax.set_title(f"{layer}, {moment}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(layers) - 1:
                ax.set_xlabel("log10 |gradient|", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    paths.append(_save(fig, out / "helmholtz_gradients.png"))
    return paths


def causal_figures(session, curves: Mapping) -> list[Path]:
    """``causal_error.png``: the error per step, plain and causal, and the smallest causal weight."""
    fig, axes = _figure(1, 2)
    colors = {"plain": "tab:red", "causal": "tab:blue"}
    for (method, seed), h in curves.items():
        alpha = 0.5 + 0.5 * (seed == 0)
        if "error/rel_l2" in h:
            _line(axes[0, 0], h["error/rel_l2"], color=colors[method], alpha=alpha, label=f"{method}, seed {seed}")
        if "causal/w_min" in h:
            w = h["causal/w_min"].dropna()
            axes[0, 1].plot(
                *_decimate(w.index.to_numpy(), w.to_numpy(dtype=float)),
                color=colors[method],
                alpha=alpha,
                label=f"seed {seed}",
            )
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title("relative L2 error")
    axes[0, 1].set_ylim(-0.02, 1.02)
    axes[0, 1].set_title("smallest causal weight (the last time chunk's)")
    for ax in axes.ravel():
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    return [_save(fig, session.out / "causal_error.png")]


def optimizer_figures(session, curves: Mapping, switches: Sequence[int]) -> list[Path]:
    """``optimizers_loss.png``: loss and error per row of each arm and seed, the switch steps dashed."""
    fig, axes = _figure(1, 2)
    colors = {"adam": "tab:red", "adam+lbfgs": "tab:orange", "adam+lbfgs+nncg": "tab:blue"}
    for (arm, seed), h in curves.items():
        alpha = 0.5 + 0.5 * (seed == 0)
        label = f"{arm}, seed {seed}"
        _line(axes[0, 0], h["loss/total"], color=colors[arm], alpha=alpha, lw=0.8, label=label)
        if "error/rel_l2" in h:
            _line(axes[0, 1], h["error/rel_l2"], color=colors[arm], alpha=alpha, marker=".", ms=3, label=label)
    for ax, title in zip(axes.ravel(), ("training loss", "relative L2 error")):
        for s in switches:
            ax.axvline(s, color="0.5", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("row (Adam step, L-BFGS or Newton-CG iteration)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return [_save(fig, session.out / "optimizers_loss.png")]
