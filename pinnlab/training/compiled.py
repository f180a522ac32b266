"""Compiled functions that run eagerly for their first calls in each run: :class:`Compiled`.

Why: tracing a ``tf.function`` whose body differentiates through the residual's input derivatives
costs 0.2-0.6 s on 2 cores, and a function that a run calls only a few times never earns that back.
A sweep trial of 50 steps calls the diagnostics once (step 0); the sharpness check follows the
same rule with an eager form of its own (its first check eager, :mod:`pinnlab.training.sharpness`).
Traced, those two were 0.6 s of a 1.3 s trial on the seed problem; run eagerly, 0.2 s
(benchmarks/throughput.py, docs/benchmarks.md).  A long run traces on the call after the eager ones
and runs compiled from there on.

Only a trainer's first run starts eagerly.  A trainer reused for the next sweep trial
(:mod:`pinnlab.training.reuse`, which calls :meth:`Compiled.restart`) runs these functions compiled
from the first call of its second run on: the trace is paid once and serves every later trial
(short trials would otherwise never reach a trace and pay the eager cost every time).  Eager and
traced evaluations of the same function agree to float rounding, not always bit for bit (graph
optimisations may reorder sums), so a reused trainer's diagnostics can differ from a fresh one's in
the last bits; the training steps, always compiled, are identical (tests/test_reuse.py).

The training step itself is always compiled: its numbers must not depend on the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["Compiled"]


class Compiled:
    """``fn`` eagerly for the first ``eager_calls`` calls of a trainer's first run, then
    ``tf.function(fn, **kw)`` (and from the first call of every later run that follows a call).

    The ``tf.function`` is created at once but traced only on its first compiled call.
    """

    def __init__(self, fn: Callable[..., Any], *, eager_calls: int = 1, **tf_function_kwargs: Any):
        self.python_function = fn
        self.eager_calls = eager_calls
        self.function = tf.function(fn, **tf_function_kwargs)
        self.calls = 0  # in this run

    def restart(self) -> None:
        """A new run of the same trainer: compiled from its first call if an earlier run called it."""
        if self.calls:
            self.eager_calls = 0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.eager_calls:
            return self.python_function(*args, **kwargs)
        return self.function(*args, **kwargs)
