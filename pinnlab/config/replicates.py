"""Replicates: one configuration trained on k seeds, and what a trial makes of them.

Why: divergence depends on the seed (initial weights, batch order).  One run per configuration
gives a yes/no, not a rate; a divergence map needs P(divergent) per region, so a sweep with
``replicates: k`` trains every trial's configuration on the seeds ``training.seed + i``
(i = 0 .. k-1) and records every seed's fate.

Every set of replicates trains in one compiled step: the trainer's replica axis
(:mod:`pinnlab.training.replicas`) stacks the k networks; this module holds the rules that turn
their k results into one verdict, for ``pinnlab run --set training.replicates=k`` (:func:`combine`)
and for a sweep trial (:func:`aggregate`), and the config rules (:func:`check_replicates`).

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
  :class:`~pinnlab.core.outcomes.Outcome` order; so the outcome alone says which side won), and its other summary attributes (``nan_onset_step``,
  ``divergence_step``, ``steps_run``, ..., ``mlflow_run_id``) are those of the first seed with that
  outcome, the *representative* seed: so the trials frame, the report's tables and the dashboard's
  trajectories read one coherent run per trial;
* the objective value is the **median** over the non-divergent seeds' finite values: the median,
  not the mean, because one seed that trained to a poor but finite answer should not move the
  value of a configuration that works on the others; divergent seeds have no meaningful value (a
  last finite loss before a blowup ranks nothing).  No such value -> PRUNED.

Per-seed attributes (names in :mod:`pinnlab.core.keys`): ``replicates``, ``divergence_rate``,
``replicate_seeds``, ``replicate_outcomes``, ``replicate_onsets`` (the step at which each divergent
seed was detected: ``divergence_step``, else ``nan_onset_step``), ``replicate_steps_run``,
``replicate_values`` and ``replicate_run_ids``; the survival analysis treats every seed as a unit.
A run's combined result (:func:`combine`): a :class:`~pinnlab.training.RunResult` whose
``replicates`` lists every seed's outcome, onsets, final loss and error, and whose top-level fields
summarise them: ``outcome`` and ``divergence_rate`` by :func:`verdict`; ``nan_onset_step`` and
``divergence_step`` the earliest over replicates (``first_nonfinite`` of that replicate);
``steps_run`` the most; losses, norms, errors and held-out residuals the median over replicates
with a finite value; ``history`` and ``final_metrics`` replicate 0's (the base seed: what
``replicates: 1`` would report; every replicate's result is in ``replicate_results``).

What ``training.replicates > 1`` needs of the rest of a config (:func:`check_replicates`, called by
the config validator, so an unsupported combination is one line before the TensorFlow import):

* a plain MLP (``model.architecture: mlp``; the stacked layout has no gated encoders);
* no full-batch optimizer (``lbfgs``, ``newton_cg``) in any phase: each runs one line search over one
  flattened weight vector; k replicates would share its step lengths and its stopping test;
* a problem whose residual is row-wise (``Problem.rowwise()``; not seed with ``literal: true``,
  which keeps only the batch's first sample): stacked replicates share one row axis.

A sweep trial of k seeds (``Objective`` in :mod:`pinnlab.sweep.objective`)
--------------------------------------------------------------------------
The seeds train together, stacked on the trainer's replica axis (one compiled step for all k).  A
divergent seed stops itself (the divergence monitor ends that replicate at detection and freezes
it, as a single trial would end) while the others go on: divergence is what is being counted, so
one divergent seed never stops the trial.  An Optuna pruner (``pruner: median | halving``) is
refused with ``replicates > 1`` (:func:`pinnlab.sweep.spec.load_sweep`): it would stop seeds on
their loss curve, censoring them at arbitrary steps and biasing both the divergence rate and the
survival curves, and k seeds would report k values for one step of one trial.

MLflow: one run per seed, a child of the study's parent run like any trial's run, tagged
``trial=<number>`` and ``replicate=<i>`` (its ``training.seed`` is a param).  Why runs and not
per-seed metrics inside one trial run: a seed is a whole training with its own per-step history
(``history.csv``), outcome tags and plots, and the metric keys stay exactly those of a single run
(``loss/total``, not ``seed2/loss/total``), so every reader of runs works on a seed unchanged.  Why
siblings under the study's run and not a third level (trial run -> seed runs): the recovery of a
dead or stopped worker closes the RUNNING children of the study's run by their ``trial`` tag
(:mod:`pinnlab.sweep.recovery`), and the analysis joins trials to children of that run; a nested
level would leave a killed seed's run RUNNING and be invisible to both.  In the MLflow UI, group
the study's runs by the ``trial`` tag to see a trial's seeds together.  The trial's
``mlflow_run_id`` is its representative seed's run; ``replicate_run_ids`` lists them all.

TensorFlow-free; :func:`pinnlab.runs.run_replicates` trains a set of replicates.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pinnlab.config.sources import dict_without
from pinnlab.core import keys, names
from pinnlab.core.outcomes import Outcome
from pinnlab.problems import resolve_problem

if TYPE_CHECKING:
    from pinnlab.training.result import RunResult

__all__ = [
    "verdict",
    "replicate_config",
    "onset",
    "aggregate",
    "divergent_label",
    "check_replicates",
    "stackable",
    "group_key",
    "combine",
    "replicate_row",
]


def replicate_config(cfg, i: int):
    """The config of replicate ``i`` as a separate run: seed ``training.seed + i``, one replicate,
    validated like any run config (its MLflow params are a single run's)."""
    d = cfg.to_dict()
    d["training"] = {**d["training"], "seed": cfg.training.seed + i, "replicates": 1}
    return type(cfg).model_validate(d)


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
    winning side (ties: the first in :class:`~pinnlab.core.outcomes.Outcome` order)."""
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


# numeric settings one stacked training can hold per replicate (pinnlab.training.trainer): seeds,
# learning rates (an update scaled by its rate's ratio), loss-term weights (λ per replicate),
# penalty coefficients, clipping and max-norm thresholds, and the host loop's divergence rules
PER_REPLICA = ("name", "training.seed", "training.replicates", "optimizer.learning_rate", "loss.weights", "divergence")


def group_key(cfg: Any) -> str:
    """What configs must share to train as replicates of one stacked training: everything but
    :data:`PER_REPLICA` and the values (not the presence) of the penalties, clipping and max-norm."""
    import json

    d = dict_without(cfg, PER_REPLICA)
    reg = d["regularization"]
    for name in ("l2", "l1"):
        reg[name] = reg[name] > 0
    for name in ("clip_norm", "max_norm"):
        reg[name] = reg[name] is not None
    return json.dumps(d, sort_keys=True, default=str)


def stackable(cfg: Any) -> bool:
    """Whether ``cfg``'s seeds can train stacked (:func:`check_replicates` has nothing against it)."""
    try:
        check_replicates(cfg)
    except ValueError:
        return False
    return True


def check_replicates(cfg: Any) -> None:
    """Raise ValueError (turned into a one-line ConfigError by pydantic's wrapper) when unsupported."""
    k = cfg.training.replicates
    full = [(i, n) for i, (n, _) in enumerate(cfg.optimizer.phases()) if names.OPTIMIZERS.get(n).full_batch]
    if full:
        which = "optimizer.name" if full[0][0] == 0 else "optimizer.then"
        raise ValueError(
            f"training.replicates: {k} is not allowed with {which} {full[0][1]!r} (one line search over the "
            "flattened weights cannot be shared by independent replicates); use replicates: 1 or a first-order optimizer"
        )
    if cfg.model.architecture != "mlp":
        raise ValueError(
            f"training.replicates: {k} is not allowed with model.architecture {cfg.model.architecture!r} "
            "(stacked replicates are plain MLPs); use replicates: 1 or architecture: mlp"
        )

    problem = resolve_problem(cfg.problem.name, cfg.problem.params)
    if not problem.rowwise():
        raise ValueError(
            f"training.replicates: {k} is not allowed with problem {cfg.problem.name!r} and these params: "
            "its residual reduces over the points, so stacked replicates would mix; use replicates: 1"
        )


def _median(values) -> float | None:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return statistics.median(finite) if finite else None


def _earliest(results: list[RunResult], attr: str) -> RunResult | None:
    hit = [r for r in results if getattr(r, attr) is not None]
    return min(hit, key=lambda r: getattr(r, attr)) if hit else None


def replicate_row(seed: int, res: RunResult) -> dict:
    """One entry of ``replicates`` in ``pinnlab run --json``."""
    s = res.summary()
    keep = (
        "outcome",
        "reason",
        "nan_onset_step",
        "first_nonfinite",
        "divergence_step",
        "steps_run",
        "final_loss",
        "weight_norm_ratio",
        "rel_l2_error",
        "heldout_residual",
        "stopped_by",
    )
    row = {"seed": seed, **{k: s[k] for k in keep}}
    for key in ("causes", "risks"):
        if key in s:
            row[key] = s[key]
    return row


def combine(cfg, results: list[RunResult], *, wall_seconds: float) -> RunResult:
    """The run's result from its replicates' results (the rules are in the module docstring), of
    their type (:class:`pinnlab.training.result.RunResult`)."""
    seeds = [r.config.training.seed for r in results]
    counts = Counter(r.outcome for r in results)
    outcome, _, rate = verdict([r.outcome for r in results], cfg.divergence.replicate_rate)
    parts = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: kv[0].order))
    lead = next(r for r in results if r.outcome == outcome)
    reason = f"{len(results)} replicates (seeds {seeds[0]}..{seeds[-1]}): {parts}; e.g. seed {lead.config.training.seed}: {lead.reason}"
    nan = _earliest(results, "nan_onset_step")
    div = _earliest(results, "divergence_step")
    base = results[0]
    warnings = list(dict.fromkeys(w for r in results for w in r.warnings))
    combined = type(results[0])(
        config=cfg,
        outcome=outcome,
        reason=reason,
        nan_onset_step=None if nan is None else nan.nan_onset_step,
        first_nonfinite=None if nan is None else nan.first_nonfinite,
        steps_run=max(r.steps_run for r in results),
        steps_budget=base.steps_budget,
        wall_seconds=wall_seconds,
        compile_seconds=base.compile_seconds,
        initial_loss=_median(r.initial_loss for r in results),
        final_loss=_median(r.final_loss for r in results),
        weight_norm_initial=_median(r.weight_norm_initial for r in results) or float("nan"),
        weight_norm_final=_median(r.weight_norm_final for r in results) or float("nan"),
        rel_l2_error=_median(r.rel_l2_error for r in results),
        heldout_ratio=_median(r.heldout_ratio for r in results),
        heldout_residual=_median(r.heldout_residual for r in results),
        stopped_by=base.stopped_by,
        warnings=warnings,
        history=base.history,
        final_metrics=base.final_metrics,
        divergence_step=None if div is None else div.divergence_step,
        replicates=[replicate_row(s, r) for s, r in zip(seeds, results)],
        divergence_rate=rate,
    )
    combined.replicate_results = results
    return combined
