"""Replicates: one configuration trained on k seeds, and what a trial makes of them.

Why: divergence depends on the seed (initial weights, batch order).  One run per configuration
gives a yes/no, not a rate; a divergence map needs P(divergent) per region, so a sweep with
``replicates: k`` trains every trial's configuration on the seeds ``training.seed + i``
(i = 0 .. k-1) and records every seed's fate.

The loop lives behind one function, :func:`run_replicates`: the seeds run one after another
today; a trainer that stacks the k networks on a leading axis (independent replicates, one tape)
will replace the loop without changing its callers.

The rules a trial follows (:func:`aggregate`)
---------------------------------------------
* ``divergence_rate`` = divergent seeds / k (divergent: ``Outcome(x).divergent``);
* the trial counts as divergent when ``divergence_rate >= divergence.replicate_rate`` (0.5 by
  default): at least half of its seeds diverged (:func:`verdict`, the one rule of every set of
  replicates: a sweep trial's seeds and a run's stacked ``training.replicates``).  Then it is PRUNED, like a single divergent run, so TPE learns from
  it; the boundary sampler and the analysis use the same threshold, so the trial's state, its
  ``outcome`` and its label in the sampler never disagree.  With k = 2, one divergent seed of two
  is already divergent: an even k has a tie, and a configuration that fails one seed in two is
  not one to call stable;
* its ``outcome`` is the most common outcome among the seeds on the winning side (divergent
  classes when divergent, stable / silent_failure otherwise; ties go to the first in
  :class:`~pinnlab.outcomes.Outcome` order; so the outcome alone says which side won), and its other summary attributes (``nan_onset_step``,
  ``divergence_step``, ``steps_run``, ..., ``mlflow_run_id``) are those of the first seed with that
  outcome, the *representative* seed: so the trials frame, the report's tables and the dashboard's
  trajectories read one coherent run per trial;
* the objective value is the **median** over the non-divergent seeds' finite values: the median,
  not the mean, because one seed that trained to a poor but finite answer should not move the
  value of a configuration that works on the others; divergent seeds have no meaningful value (a
  last finite loss before a blowup ranks nothing).  No such value -> PRUNED.

Per-seed attributes (names in :mod:`pinnlab.keys`): ``replicates``, ``divergence_rate``,
``replicate_seeds``, ``replicate_outcomes``, ``replicate_onsets`` (the step at which each divergent
seed was detected: ``divergence_step``, else ``nan_onset_step``), ``replicate_steps_run``,
``replicate_values`` and ``replicate_run_ids``; the survival analysis treats every seed as a unit.
TensorFlow-free apart from :func:`run_replicates`, which imports the trainer when called.  The seeds
of a trial share one built trainer (``reuse``): seed 0 traces, the others are reset by assignment.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pinnlab import keys
from pinnlab.outcomes import Outcome

__all__ = [
    "verdict",
    "replicate_config",
    "run_replicates",
    "onset",
    "aggregate",
    "divergent_label",
]

def replicate_config(cfg, i: int):
    """The run config of seed ``i``: ``training.seed + i``, validated like any run config."""
    from pinnlab.config import apply_overrides, validate_config

    return validate_config(apply_overrides(cfg.to_dict(), [("training.seed", cfg.training.seed + i)]))


def run_replicates(
    cfg,
    k: int,
    callbacks: Sequence[Any] = (),
    *,
    tracking: Callable[[int, Any], Any] | None = None,
    reuse: bool = False,
) -> list[Any]:
    """Train ``cfg`` on the seeds ``training.seed + i``, i < k; returns their :class:`pinnlab.runs.Run`
    in order, each through :func:`pinnlab.runs.run_config` (the one path of every run).

    ``callbacks``: trainer callbacks shared by every seed (a signal handler).  ``tracking(i, cfg_i)``:
    the :class:`pinnlab.runs.Tracking` of seed i, or None for an untracked seed.  ``reuse``: seeds
    differ only in ``training.seed``, so with it the built, traced trainer of seed 0 serves the others
    (:mod:`pinnlab.training.reuse`).  A seed that diverges ends only its own run; the next seed starts.
    """
    from pinnlab.runs import run_config

    if k < 1:
        raise ValueError(f"`k >= 1` must hold, but got ({k=}).")
    runs = []
    for i in range(k):
        seed_cfg = replicate_config(cfg, i)
        track = tracking(i, seed_cfg) if tracking is not None else None
        runs.append(run_config(seed_cfg, tracking=track, callbacks=callbacks, reuse=reuse))
    return runs


def onset(summary: Mapping[str, Any]) -> int | None:
    """The step at which a run's divergence was detected: ``divergence_step``, else its NaN onset."""
    step = summary.get("divergence_step")
    return step if step is not None else summary.get("nan_onset_step")


def _winner(outcomes: Sequence[Outcome]) -> Outcome:
    counts = Counter(outcomes)
    return min(counts, key=lambda o: (-counts[o], o.order))


def verdict(outcomes: Sequence[Outcome], replicate_rate: float) -> tuple[Outcome, bool, float]:
    """(outcome, divergent, divergence rate) of a set of replicates: divergent when the share of
    divergent outcomes is at least ``replicate_rate``; the outcome is the most common one on the
    winning side (ties: the first in :class:`~pinnlab.outcomes.Outcome` order)."""
    bad = [o.divergent for o in outcomes]
    rate = sum(bad) / len(outcomes)
    divergent = rate >= replicate_rate
    return _winner([o for o, b in zip(outcomes, bad) if b == divergent]), divergent, rate


def aggregate(
    summaries: Sequence[Mapping[str, Any]],
    values: Sequence[float | None],
    seeds: Sequence[int],
    run_ids: Sequence[str | None] = (),
    *,
    replicate_rate: float,
) -> dict[str, Any]:
    """The trial's verdict from its seeds' run summaries (rules: module docstring).

    Returns ``representative`` (index of the seed whose summary the trial shows), ``divergent``
    (bool), ``value`` (median objective over the non-divergent seeds, None if none is finite) and
    ``attrs``: the per-seed user attributes.
    """
    outcomes = [Outcome(s["outcome"]) for s in summaries]
    bad = [o.divergent for o in outcomes]
    outcome, divergent, rate = verdict(outcomes, replicate_rate)
    representative = outcomes.index(outcome)
    finite = [v for v, b in zip(values, bad) if not b and v is not None]
    return {
        "representative": representative,
        "outcome": outcome,
        "divergent": divergent,
        "value": statistics.median(finite) if finite else None,
        "attrs": {
            keys.REPLICATES_ATTR: len(outcomes),
            keys.DIVERGENCE_RATE_ATTR: rate,
            keys.REPLICATE_SEEDS_ATTR: list(seeds),
            keys.REPLICATE_OUTCOMES_ATTR: [str(o) for o in outcomes],
            keys.REPLICATE_ONSETS_ATTR: [onset(s) if b else None for s, b in zip(summaries, bad)],
            keys.REPLICATE_STEPS_ATTR: [s.get("steps_run") for s in summaries],
            keys.REPLICATE_VALUES_ATTR: list(values),
            keys.REPLICATE_RUNS_ATTR: list(run_ids) or [None] * len(outcomes),
        },
    }


def divergent_label(attrs: Mapping[str, Any]) -> bool | None:
    """Whether a finished trial counts as divergent, from its user attributes; None if unjudged.

    ``Outcome(outcome).divergent``: with replicates the trial's outcome is taken from the winning
    side of :func:`verdict`, so it says what the rate decided.  A trial without a run outcome
    (crash, retried, surplus, unfinished) has no label.
    """
    outcome = Outcome.parse(attrs.get("outcome"))
    if outcome is None or not outcome.judged:
        return None
    return outcome.divergent
