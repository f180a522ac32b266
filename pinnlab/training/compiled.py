"""Functions that run eagerly for their first calls in a trainer's life, then compiled: :class:`Compiled`.

Tracing a ``tf.function`` that differentiates through the residual's input derivatives costs
0.1-2 s on 2 cores, so a function called only a few times (the diagnostics, the update ratio, the
evaluation grid's prediction) never earns its trace back.  A run knows how many calls it makes at
most (one per ``diagnostics.every`` steps, :meth:`Compiled.plan`): while they fit in what is left of
the function's eager budget (``diagnostics.eager_calls``, about what a trace costs in eager calls) it runs
eagerly, otherwise compiled from its first call.  The budget spans the trainer's life, so a trainer
reused for the next sweep trial (:mod:`pinnlab.training.reuse`) traces once its short runs' calls
add up to it (the ski-rental rule: at most about twice the cheaper of all-eager and compiled from
the start).  The measurements behind these numbers: docs/design.md, "Eager or compiled".

Eager and traced evaluations agree to float rounding, not always bit for bit (graph optimisations
may reorder sums); the training step is always compiled, so its numbers never depend on the budget.
The sharpness check follows the same rule with an eager form of its own
(:mod:`pinnlab.training.sharpness`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["Compiled"]


class Compiled:
    """``fn`` eagerly for the first ``eager_calls`` calls over its trainer's life (its runs
    together), then ``tf.function(fn, **kw)``.

    The ``tf.function`` is created at once but traced only on its first compiled call.
    """

    def __init__(self, fn: Callable[..., Any], *, eager_calls: int, **tf_function_kwargs: Any):
        self.python_function = fn
        self.eager_calls = eager_calls
        self.function = tf.function(fn, **tf_function_kwargs)
        self.calls = 0

    def plan(self, calls: int) -> None:
        """A run starts that makes at most ``calls`` calls: if they would spend what is left of the
        eager budget, run compiled from this run's first call (the trace is paid at once, not after
        eager calls that would not have saved it)."""
        if self.calls + calls > self.eager_calls:
            self.eager_calls = min(self.eager_calls, self.calls)

    def count_call(self) -> bool:
        """Count a call; True when it runs eagerly (for a caller whose eager form differs, such as
        the sharpness check, which counts checks and runs each one's HVPs on one recorded gradient)."""
        self.calls += 1
        return self.calls <= self.eager_calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.count_call():
            return self.python_function(*args, **kwargs)
        return self.function(*args, **kwargs)
