"""Training: the compiled trainer, its diagnostics, outcome classes and result object.

``Trainer`` and ``train`` import TensorFlow, so they load on first use; the outcome rules, the
result type and the callback base stay importable without it (analysis and tracking use them).
"""

from pinnlab.training.callbacks import Callback, ProgressBar, StopTraining
from pinnlab.training.divergence import classify_finished, growth_rate
from pinnlab.training.result import RunResult

__all__ = [
    "Callback",
    "ProgressBar",
    "StopTraining",
    "classify_finished",
    "growth_rate",
    "RunResult",
    "Trainer",
    "train",
]


def __getattr__(name):
    if name in ("Trainer", "train"):
        from pinnlab.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'pinnlab.training' has no attribute {name!r}")
