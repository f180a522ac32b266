"""Functions that run eagerly for their first calls in a trainer's life, then compiled: :class:`Compiled`.

Why: tracing a ``tf.function`` whose body differentiates through the residual's input derivatives
costs 0.1-2 s on 2 cores, and a function called only a few times never earns that back.  Measured
on the seed problem's networks (``benchmarks/eager_costs.py``; eager call / trace and first call /
compiled call): the diagnostics 0.008-0.011 / 0.12-0.15 / 0.001-0.002 s (poisson2d: 0.073 / 1.8 /
0.008 s), the update ratio 0.001-0.002 / 0.04-0.07 / 0.001 s, the evaluation grid's prediction
0.002-0.003 / 0.014-0.24 / 0.001 s.  A run knows how many calls
it makes at most (one per ``diagnostics.every`` steps of its budget; :meth:`Compiled.plan`): a run
whose calls stay within what is left of the function's eager budget (about as many calls as its
trace costs, :data:`EAGER_CALLS`) runs it eagerly, a longer one compiled from its first call.  A
sweep trial of 50 steps calls each of them once or twice and never traces; a run of 3,600 steps
with diagnostics every 100 steps traces them at its first call.

The budget spans the trainer's life, not one run: a trainer reused for the next sweep trial
(:mod:`pinnlab.training.reuse`) goes on counting, and traces once its short runs' calls add up to
the budget (the ski-rental rule: over any number of reuses, at most about twice the cheaper of
all-eager and compiled-from-the-start).  In the README sweep most reused trainers serve one or two
more trials; compiled from their second run on, such a trial paid 0.35-0.4 s of Python tracing
for its diagnostics, HVP, held-out residual and update ratio (``benchmarks/trial_breakdown.py``'s
trace log on a checkout of 10766e1), more than all their eager calls.
Eager and traced evaluations of the same function agree to float rounding, not always bit for bit
(graph optimisations may reorder sums), so a reused trainer's diagnostics can differ from a fresh
one's in the last bits; the training steps, always compiled, are identical (tests/test_reuse.py).
The sharpness check follows the same rule (a :class:`Compiled` that counts its checks) with an
eager form of its own (:mod:`pinnlab.training.sharpness`).

The training step itself is always compiled: its numbers must not depend on the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["EAGER_CALLS", "Compiled"]

# eager calls before the trace: a trace costs 12-25 eager diagnostics calls, 34-60 update ratios,
# 4-73 predictions (benchmarks/eager_costs.py)
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
