"""pinnlab: sweeps and diagnostics for networks trained on derivative (physics-informed) losses.

Public API::

    from pinnlab import load_config, train
    result = train("seed", ["training.epochs=5"])
    result.outcome, result.nan_onset_step, result.history
"""

from __future__ import annotations

import os

# Silence TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pinnlab.config import RunConfig, load_config  # noqa: E402
from pinnlab.errors import ConfigError, PinnlabError, UnknownNameError  # noqa: E402

__all__ = [
    "ConfigError",
    "PinnlabError",
    "UnknownNameError",
    "RunConfig",
    "load_config",
    "train",
    "RunResult",
]

__version__ = "0.1.0"


def __getattr__(name):  # heavy imports (TensorFlow) only when a trainer is actually wanted
    if name in ("train", "RunResult", "Trainer"):
        from pinnlab import training

        return getattr(training, name)
    raise AttributeError(f"module 'pinnlab' has no attribute {name!r}")
