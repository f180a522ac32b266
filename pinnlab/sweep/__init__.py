"""Optuna sweeps over run configs.  The only package that imports optuna.

``load_sweep(path)`` validates a sweep file into a :class:`SweepSpec`; ``run_sweep(spec, ...)``
creates or resumes its study and runs the missing trials; ``run_worker(...)`` joins a study from
any machine.  The names load on first use, so ``pinnlab.sweep.spec`` (validation) imports no
optuna.
"""

from __future__ import annotations

import importlib

__all__ = ["SweepSpec", "SweepReport", "load_sweep", "run_sweep", "run_worker"]

_HOMES = {
    "SweepSpec": "pinnlab.sweep.spec",
    "load_sweep": "pinnlab.sweep.spec",
    "SweepReport": "pinnlab.sweep.runner",
    "run_sweep": "pinnlab.sweep.runner",
    "run_worker": "pinnlab.sweep.runner",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'pinnlab.sweep' has no attribute {name!r}")
