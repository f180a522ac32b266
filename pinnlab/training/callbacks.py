"""Callbacks: how the trainer reports to the outside world (progress, tracking) without knowing it."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

__all__ = ["Callback", "ProgressBar", "StopTraining"]


class StopTraining(Exception):
    """Raised by a callback's ``on_step`` or ``on_diagnostics`` to end a run (e.g. a sweep's pruner).

    The run ends at the step being reported, with that step's row kept, and is finished normally
    (outcome rules, ``on_train_end``); ``RunResult.stopped_by`` holds the message.  The exception
    carries nothing else: the trainer knows the step.
    """


class Callback:
    """No-op base.  ``metrics`` hold plain floats; non-finite values are possible, log with care."""

    def on_train_begin(self, trainer) -> None: ...

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def on_diagnostics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def on_train_end(self, result) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar on stderr: steps done, loss and weight norm, refreshed at most every 0.5 s."""

    def __init__(self, desc: str = "train", stream=None, mininterval: float = 0.5):
        self.desc = desc
        self.stream = stream or sys.stderr
        self.mininterval = mininterval
        self.bar = None
        self._last = 0.0

    def on_train_begin(self, trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.steps_budget,
            desc=self.desc,
            unit="step",
            file=self.stream,
            mininterval=self.mininterval,
            dynamic_ncols=True,
        )

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.bar.n == 0 and self.bar.initial == 0:
            self._restart_clock()
        else:
            self.bar.update(1)
        now = time.monotonic()
        if now - self._last >= self.mininterval:
            self._last = now
            self.bar.set_postfix(
                loss=f"{metrics.get('loss/total', float('nan')):.3g}",
                W=f"{metrics.get('weight_norm/total', float('nan')):.3g}",
                refresh=False,
            )

    def _restart_clock(self) -> None:
        """After the first step: count it as done but start the clock (and tqdm's rate average) from
        here.  The first step traces and compiles the training step, seconds against the
        milliseconds of the others; extrapolated, it made the ETA of a 7,000-step run hours."""
        bar = self.bar
        bar.reset()
        bar.initial = bar.n = bar.last_print_n = 1  # rate = (n - initial) / elapsed: "?" until a step is timed
        bar.refresh()

    def on_train_end(self, result) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{result.outcome} after {result.steps_run} steps", refresh=True)
            self.bar.close()
