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
``helmholtz_error.png``        relative L2 error per step and the annealed boundary weight λ
``helmholtz_gradients.png``    per-layer histograms of ∂L_r/∂W against ∂(λ·L_bc)/∂W at step 0
                               and at the end of training (plain and annealed)
=============================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pinnlab.plots import _decimate

__all__ = ["seed_figures", "convection_figures", "helmholtz_figures"]

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
    for result, trainer in question:
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
            im = ax.imshow(u.reshape(60, 60).T, origin="lower", extent=(-3, 2.9, -3, 2.9), cmap="RdBu_r",
                           vmin=-lim, vmax=lim)
            fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_xlabel(f"std(u) = {np.std(u):.3g}", fontsize=8)
        title = "reference: u = x − y²/2 (Dirichlet data)" if label == "reference" else label
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    paths.append(_save(fig, out / "seed_remedies.png"))
    return paths
