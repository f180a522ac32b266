"""Training: the compiled trainer, its diagnostics, outcome classes and result object."""

from pinnlab.training.callbacks import Callback, ProgressBar, StopTraining
from pinnlab.training.divergence import DIVERGENT, OUTCOMES, classify_finished, growth_rate
from pinnlab.training.result import RunResult
from pinnlab.training.trainer import Trainer, train

__all__ = [
    "Callback",
    "ProgressBar",
    "StopTraining",
    "DIVERGENT",
    "OUTCOMES",
    "classify_finished",
    "growth_rate",
    "RunResult",
    "Trainer",
    "train",
]
