"""The outcome taxonomy: what became of a run, or of a sweep trial that produced none.

The one place where outcome names are spelled.  Everything else compares against :class:`Outcome`
members (a ``StrEnum``, so ``Outcome.NAN == "nan"`` and the values round-trip through JSON, MLflow
tags and Optuna user attributes unchanged), in the manner of Optuna's ``TrialState``.

Run outcomes (assigned by :mod:`pinnlab.training.divergence`, whose docstring has the rules and
thresholds):

==================  ==========  ===============================================================
``stable``          judged      finite, and trained: right at the end, or still improving towards it
``stalled``         judged      finite but did not train: wrong at the end and no longer improving
``silent_failure``  judged      finite and converged in loss, but wrong (error or held-out residual)
``diverging``       divergent   finite at the end of its budget, but its weights or its unbounded-below
                                loss still running away (it would diverge given more steps)
``nan``             divergent   a loss, gradient or weight became NaN/inf
``blowup``          divergent   the weight norm passed a limit or grew exponentially
``unbounded``       divergent   the loss fell below the floor (a loss unbounded below)
==================  ==========  ===============================================================

Trial fates without a run outcome (a FAIL trial of a sweep; never judged, never counted as a
result):

==================  =============================================================================
``crash``           the trial raised instead of producing a result
``retried``         its worker died or was stopped, and the trial was run again
``surplus``         it lost the race for the last queued slot and never trained
==================  =============================================================================

Two questions, one label: did the run diverge (the divergent classes), and if not, did it train
(``stable`` against the failures ``stalled`` and ``silent_failure``, :attr:`Outcome.worked`).  A
sweep keeps the failures as results (COMPLETE, not PRUNED) but never ranks them best.

Colours are the dashboards' (green for stable, olive and purple for the finite failures, orange to
red for the divergent classes, grey for the unjudged), and ``order`` sorts tables and legends the
same way everywhere.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "RUN_OUTCOMES", "DIVERGENT", "UNJUDGED", "trial_outcome"]


class Outcome(StrEnum):
    STABLE = "stable"
    STALLED = "stalled"
    SILENT_FAILURE = "silent_failure"
    DIVERGING = "diverging"
    BLOWUP = "blowup"
    UNBOUNDED = "unbounded"
    NAN = "nan"
    CRASH = "crash"
    RETRIED = "retried"
    SURPLUS = "surplus"

    @property
    def divergent(self) -> bool:
        """Training ran away (the sweep prunes such trials; the analysis counts them as diverged)."""
        return self in DIVERGENT

    @property
    def worked(self) -> bool:
        """The run trained: finite and not a failure (``stable``); the only outcome a sweep ranks."""
        return self is Outcome.STABLE

    @property
    def judged(self) -> bool:
        """A run outcome (a result), as opposed to a trial that produced none."""
        return self not in UNJUDGED

    @property
    def colour(self) -> str:
        return _COLOURS[self]

    @property
    def order(self) -> int:
        return list(Outcome).index(self)

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @classmethod
    def parse(cls, value: object) -> Outcome | None:
        """The member named ``value`` (a string from a tag or attribute), None for anything else."""
        try:
            return cls(value)  # type: ignore[arg-type]
        except ValueError:
            return None


DIVERGENT = frozenset({Outcome.DIVERGING, Outcome.NAN, Outcome.BLOWUP, Outcome.UNBOUNDED})
UNJUDGED = frozenset({Outcome.CRASH, Outcome.RETRIED, Outcome.SURPLUS})
RUN_OUTCOMES = tuple(o for o in Outcome if o.judged)

_COLOURS = {
    Outcome.STABLE: "#2ca02c",
    Outcome.STALLED: "#bcbd22",
    Outcome.SILENT_FAILURE: "#9467bd",
    Outcome.DIVERGING: "#ff9896",
    Outcome.BLOWUP: "#ff7f0e",
    Outcome.UNBOUNDED: "#8c564b",
    Outcome.NAN: "#d62728",
    Outcome.CRASH: "#7f7f7f",
    Outcome.RETRIED: "#bcbcbc",
    Outcome.SURPLUS: "#dddddd",
}
_MEANINGS = {
    Outcome.STABLE: "finite and trained: right at the end, or still improving towards it",
    Outcome.STALLED: "finite but did not train: wrong at the end and no longer improving",
    Outcome.SILENT_FAILURE: "finite and converged in loss, but wrong against the exact solution or held-out points",
    Outcome.DIVERGING: "finite at the end, but the weights or an unbounded-below loss were still running away",
    Outcome.NAN: "a loss, gradient or weight became NaN or infinite",
    Outcome.BLOWUP: "the weight norm passed its limit or grew exponentially",
    Outcome.UNBOUNDED: "the loss fell below the floor: a loss unbounded below driven to minus infinity",
    Outcome.CRASH: "the trial raised an exception instead of producing a result",
    Outcome.RETRIED: "its worker died or was stopped; the trial was run again",
    Outcome.SURPLUS: "lost the race for the last queued slot; never trained",
}


def trial_outcome(state: str, outcome: object, kind: str = "done") -> Outcome | None:
    """The outcome of a sweep trial from its Optuna state name, its ``outcome`` user attribute and
    how the budget counts it (``done``, ``retried``, ``surplus``, ``running``, ``waiting``; see
    ``pinnlab.sweep.study.budget_kinds``): the run's outcome when it produced one; for a FAIL trial
    without one, ``crash`` if it counts in the budget, else ``retried`` or ``surplus``; None for a
    trial still running or waiting."""
    parsed = Outcome.parse(outcome)
    if parsed is None and state == "FAIL":
        return Outcome.CRASH if kind == "done" else Outcome.parse(kind)
    return parsed
