"""Functions that run eagerly for their first calls in a trainer's life, then compiled: :class:`Compiled`.

Why: tracing a ``tf.function`` whose body differentiates through the residual's input derivatives
costs 0.1-0.6 s on 2 cores, and a function called only a few times never earns that back.  Measured
on the README sweep's networks (eager call / trace and first call / compiled call): the step-0
diagnostics 0.009 / 0.11-0.19 / 0.001 s, the update ratio 0.0015 / 0.04-0.06 / 0.0008 s, the
evaluation grid's prediction 0.002 / 0.015-0.024 / 0.0012 s.  So each function runs eagerly for
about as many calls as its trace costs in eager calls (the ski-rental rule: whatever the number of
calls, at most twice the cheaper of all-eager and compiled-from-the-start), then traces once and
runs compiled.  A sweep trial of 50 steps calls each of them once or twice and never traces; a run
of 3,600 steps with diagnostics every 100 steps traces them part-way through.

The count spans the trainer's life, not one run: a trainer reused for the next sweep trial
(:mod:`pinnlab.training.reuse`) goes on counting.  In the README sweep most reused trainers serve
one or two more trials, which traced anew from their second run on cost 0.35-0.9 s of traces each
(more than all their eager calls); a trainer that serves many trials traces once its calls add up.
Eager and traced evaluations of the same function agree to float rounding, not always bit for bit
(graph optimisations may reorder sums), so a reused trainer's diagnostics can differ from a fresh
one's in the last bits; the training steps, always compiled, are identical (tests/test_reuse.py).
The sharpness check follows the same rule with an eager form of its own
(:mod:`pinnlab.training.sharpness`).

The training step itself is always compiled: its numbers must not depend on the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["EAGER_CALLS", "Compiled"]

# eager calls before the trace: the measured trace costs 10-30 eager calls of these functions
EAGER_CALLS = 16


class Compiled:
    """``fn`` eagerly for the first ``eager_calls`` calls over its trainer's life (its runs
    together), then ``tf.function(fn, **kw)``.

    The ``tf.function`` is created at once but traced only on its first compiled call.
    """

    def __init__(self, fn: Callable[..., Any], *, eager_calls: int = EAGER_CALLS, **tf_function_kwargs: Any):
        self.python_function = fn
        self.eager_calls = eager_calls
        self.function = tf.function(fn, **tf_function_kwargs)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.eager_calls:
            return self.python_function(*args, **kwargs)
        return self.function(*args, **kwargs)
