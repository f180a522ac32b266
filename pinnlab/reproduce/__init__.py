"""Published divergence studies, reproduced with one command each: ``pinnlab reproduce NAME``.

=============  ===========================================================================
``seed``       the Stack Overflow question pinnlab grew from and its accepted answer
               (:mod:`pinnlab.reproduce.seed`)
``convection`` Krishnapriyan et al., NeurIPS 2021: convection failure modes, curriculum
               regularisation, L-BFGS (:mod:`pinnlab.reproduce.convection`)
``helmholtz``  Wang, Teng & Perdikaris, SIAM J. Sci. Comput. 2021: gradient pathologies and
               learning-rate annealing (:mod:`pinnlab.reproduce.helmholtz`)
``ntk``        Wang, Yu & Perdikaris, J. Comput. Phys. 2022: the neural tangent kernel of a
               PINN and NTK loss weighting (:mod:`pinnlab.reproduce.ntk`)
``causal``     Wang, Sankaran & Perdikaris, CMAME 2024: causal weighting of the residual in
               time (:mod:`pinnlab.reproduce.causal`)
``optimizers`` Rathore, Lei, Frangella, Lu & Udell, ICML 2024: Adam, then L-BFGS, then
               Nyström-preconditioned Newton-CG (:mod:`pinnlab.reproduce.optimizers`)
=============  ===========================================================================

Each prints a table *claim / source / ours / reproduced*, writes its figures and ``result.json``
into ``--out`` (default ``<store>/reproductions/NAME``), and records every training run as an
MLflow child run of one parent run (experiment ``reproduce``).  ``--quick`` is a reduced variant
(fewer seeds and steps) that CI runs; its verdicts are about the reduced budget.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pinnlab.core.errors import ConfigError
from pinnlab.core.preflight import check_output_dir
from pinnlab.reproduce.base import Claim, Session, StudyResult
from pinnlab.tracking import default_store
from pinnlab.tracking.uri import check_tracking_store

__all__ = ["STUDIES", "reproduce", "Claim", "StudyResult"]

STUDIES = {
    "seed": "pinnlab.reproduce.seed",
    "convection": "pinnlab.reproduce.convection",
    "helmholtz": "pinnlab.reproduce.helmholtz",
    "ntk": "pinnlab.reproduce.ntk",
    "causal": "pinnlab.reproduce.causal",
    "optimizers": "pinnlab.reproduce.optimizers",
}


def reproduce(
    name: str,
    *,
    quick: bool = False,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    progress: bool = True,
    interrupt: Any = None,
) -> StudyResult:
    """Run the reproduction ``name`` and return its claims, measured figures and figure paths."""
    if name not in STUDIES:
        raise ConfigError("NAME", f"{name!r} is not one of {', '.join(sorted(STUDIES))}")
    if out is None:
        out = default_store() / "reproductions" / (name + ("-quick" if quick else ""))
    out = check_output_dir("--out", out)
    if track:
        check_tracking_store(tracking_uri)  # before the output directory or any run is created
    module = importlib.import_module(STUDIES[name])
    command = f"pinnlab reproduce {name}" + (" --quick" if quick else "")
    session = Session(
        name,
        module.TITLE,
        module.SOURCE,
        quick=quick,
        out=out,
        tracking_uri=tracking_uri,
        track=track,
        progress=progress,
        interrupt=interrupt,
        command=command,
    )
    with session:
        module.run(session)
    return session.result
