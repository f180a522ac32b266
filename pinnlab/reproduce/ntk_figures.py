"""Figures of ``pinnlab reproduce ntk`` (same conventions as :mod:`pinnlab.reproduce.figures`).

=====================  ====================================================================
``ntk_training.png``   relative L2 error over steps under gradient descent and under Adam
                       (plain against NTK-weighted, every seed), and the NTK weights λ_u, λ_r
``ntk_spectrum.png``   eigenvalues of K_uu and K_rr in decreasing order (log y) at
                       initialisation and at the end of gradient descent, plain and NTK-weighted,
                       first seed (the paper's Fig. 3)
=====================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter

from pinnlab.reproduce.figures import _figure, _line, _save

__all__ = ["ntk_figures"]

_COLORS = {"plain": "tab:red", "ntk": "tab:blue"}
_THOUSANDS = FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0")  # 40,000 steps: ticks as 10k


def ntk_figures(session, curves: Mapping, spectra: Mapping[str, Mapping[str, np.ndarray]]) -> list[Path]:
    out = session.out
    paths = []
    fig, axes = _figure(1, 3, (4.6, 3.6))
    for (opt, method, seed), h in curves.items():
        alpha = 1.0 if seed == 0 else 0.5
        ax = axes[0, 0 if opt == "gd" else 1]
        if "error/rel_l2" in h:
            _line(ax, h["error/rel_l2"], color=_COLORS[method], alpha=alpha, label=f"{method}, seed {seed}")
        if method == "ntk":
            ls = "-" if opt == "gd" else ":"
            _line(
                axes[0, 2], h["lambda/boundary"], color="tab:blue", ls=ls, alpha=alpha, label=f"λ_u {opt}, seed {seed}"
            )
            _line(
                axes[0, 2], h["lambda/residual"], color="tab:green", ls=ls, alpha=alpha, label=f"λ_r {opt}, seed {seed}"
            )
    titles = ("error, gradient descent 1e-5", "error, Adam 1e-3 (×0.9 / 1000)", "NTK weights λ")
    for ax, title in zip(axes[0], titles):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.xaxis.set_major_formatter(_THOUSANDS)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    paths.append(_save(fig, out / "ntk_training.png"))

    if spectra:
        fig, axes = _figure(1, 2, (4.6, 3.6))
        for j, term in enumerate(("boundary", "residual")):
            ax = axes[0, j]
            for moment, blocks in spectra.items():
                method, when = moment.split(", ")
                ev = np.asarray(blocks[term])
                ev = ev[ev > 1e-6 * ev.max()]  # the rest is float32 round-off (K_uu has rank 2: two distinct points)
                ax.plot(
                    np.arange(1, len(ev) + 1),
                    ev,
                    color=_COLORS[method],
                    ls="-" if when == "end" else "--",
                    label=moment,
                )
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_xlabel("index")
            ax.set_title(f"eigenvalues of K_{'uu' if term == 'boundary' else 'rr'} (gradient descent)", fontsize=9)
            ax.legend(fontsize=7)
        paths.append(_save(fig, out / "ntk_spectrum.png"))
    return paths
