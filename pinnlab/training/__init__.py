"""Training: the compiled trainer, its diagnostics, outcome classes and result object.

``Trainer`` and ``train`` import TensorFlow, so they load on first use; the outcome rules, the
result type and the callback base stay importable without it (analysis and tracking use them).
"""

from pinnlab.backend import import_tensorflow
from pinnlab.training.callbacks import Callback, ProgressBar, StopTraining
from pinnlab.training.divergence import classify_finished, growth_rate
from pinnlab.training.result import RunResult
from pinnlab.training.reuse import TrainerCache

__all__ = [
    "Callback",
    "ProgressBar",
    "StopTraining",
    "classify_finished",
    "growth_rate",
    "RunResult",
    "Trainer",
    "train",
    "build_trainer",
]


_CACHE = None  # this process's pinnlab.training.reuse.TrainerCache, made on the first reuse=True


def build_trainer(cfg, callbacks=(), *, reuse: bool = False):
    """The :class:`Trainer` of ``cfg`` (``training.replicates: k`` seeds in one compiled step,
    :mod:`pinnlab.training.replicas`).

    Imports TensorFlow quietly first (:mod:`pinnlab.backend`).  ``run_config`` builds every run's
    trainer here, so a sweep trial, ``pinnlab run`` and a reproduction choose alike.  ``reuse``:
    take a built trainer of an earlier run in this process whose graph fits (a sweep worker's
    trials; :mod:`pinnlab.training.reuse`), reset to ``cfg``'s seed, learning rate and weights.
    """
    global _CACHE

    import_tensorflow()
    if reuse:
        _CACHE = _CACHE or TrainerCache()
        return _CACHE.get(cfg, callbacks, lambda c, cb: build_trainer(c, cb))
    from pinnlab.training.trainer import Trainer

    return Trainer(cfg, callbacks)


def __getattr__(name):
    if name in ("Trainer", "train"):
        import_tensorflow()  # first, so its start-up notices are dropped (see pinnlab.backend)
        from pinnlab.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'pinnlab.training' has no attribute {name!r}")
