"""pinnlab: sweeps and diagnostics for networks trained on derivative (physics-informed) losses.

Public API::

    from pinnlab import load_config, train
    result = train("seed", ["training.epochs=5"])
    result.outcome, result.nan_onset_step, result.history

    from pinnlab import load_sweep, run_sweep
    report = run_sweep(load_sweep("sweeps/seed_divergence.yaml"), workers=2)
"""

from __future__ import annotations

import os

# TensorFlow's C++ INFO and WARNING lines (CUDA probing on CPU machines) off unless asked for: set
# here, where every pinnlab process passes before TensorFlow can load (pinnlab.backend drops the rest).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pinnlab.core.errors import ConfigError, PinnlabError, UnknownNameError  # noqa: E402

__all__ = [
    "ConfigError",
    "PinnlabError",
    "UnknownNameError",
    "RunConfig",
    "load_config",
    "train",
    "RunResult",
    "Trainer",
    "load_sweep",
    "run_sweep",
]

_LAZY = {  # imports only when wanted: the command line installs its signal handlers before them
    "RunConfig": "pinnlab.config",
    "load_config": "pinnlab.config",
    "train": "pinnlab.training",
    "RunResult": "pinnlab.training",
    "Trainer": "pinnlab.training",
    "load_sweep": "pinnlab.sweep",
    "run_sweep": "pinnlab.sweep",
}

__version__ = "0.1.0"


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pinnlab' has no attribute {name!r}")
