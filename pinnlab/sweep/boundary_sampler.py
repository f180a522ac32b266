"""``sampler: {name: boundary}``: spend the trials where training is on the edge of diverging.

TPE optimises: it crowds the trials into the region with the best objective and says little about
where, and how likely, training fails.  This sampler maps the failure region instead.  For each
trial it

1. labels the finished trials divergent or not (:func:`pinnlab.replicates.divergent_label`: a
   divergent outcome, or ``divergence_rate >= 0.5`` with replicates; crashes have no label);
2. fits P(divergent | parameters) with scikit-learn's ``GaussianProcessClassifier`` on transformed
   parameters: numeric ones scaled to [0, 1] over their range, in log space for log-sampled ones
   (learning rates act multiplicatively; the stability threshold is a ratio), categorical ones
   one-hot;
3. draws a pool of ``N_CANDIDATES`` random configurations and proposes the one with the largest
   predictive entropy of "diverges?", i.e. P closest to 0.5: the most uncertain outcome, where a
   label teaches the model most about the boundary.

Why a Gaussian-process classifier and not a logistic regression: the boundary in (log learning
rate, width, activation) space need not be a hyperplane (the critical learning rate moves with the
width, differently per activation), which an RBF kernel follows and a linear model in these
features cannot; and far from every finished trial the GP's probability returns to 0.5, so
maximum entropy also goes to unexplored regions instead of extrapolating a plane with confidence.
Its O(n^3) fit is milliseconds on the tens to hundreds of trials of a sweep.  (The report's
boundary estimate, :mod:`pinnlab.analysis.boundary`, is a logistic fit per level: a few parameters
that bootstrap well, for an interval.)

Defaults and their reasons (``sampler.n_startup``, ``sampler.explore`` in the sweep file):

* ``n_startup = 8`` random trials first: the fit needs both classes spread over the space; with
  fewer, the first fitted boundary is where the first two labels happened to fall.  The start is
  stratified, not plain random: trial n < n_startup takes categorical level n mod k (in a seeded
  order) and, for each numeric parameter, a random point of stratum n of n_startup equal slices
  of its (log) range (a Latin hypercube), so that a short start already spans every level and
  the whole range (plain random draws left a level of three without a trial in 8 trials about one
  time in twenty, and clustered the learning rates).  Until both classes have been seen, trials
  stay random (there is no boundary to seek yet).
* ``explore = 0.2``: one trial in five is random after the start.  Pure entropy search can keep
  refining one stretch of the boundary while a second one (another activation's, or a non-monotone
  pocket) is never found; random trials bound that risk and also give the unbiased sample that a
  rate estimate over the whole space needs.  0.2 keeps 80 % of the budget on the boundary.

Determinism: every random draw of trial n comes from a generator seeded with (seed, n), so the
proposals are a function of the seed and the finished trials, whatever process runs the trial
(workers, journal, PostgreSQL: the sampler holds no state between trials).  Parameters outside the
relative search space (the first trials, a conditional parameter) come from Optuna's
RandomSampler seeded the same way.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from pinnlab.replicates import divergent_label

__all__ = ["BoundarySampler", "encode", "N_CANDIDATES"]

N_CANDIDATES = 1000  # random pool per proposal: predicting 1,000 points takes ~40 ms, the fit ~0.6 s
LABELLED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def _unit(value: float, d: FloatDistribution | IntDistribution) -> float:
    """A numeric value mapped to [0, 1] over its range (log range for log distributions)."""
    lo, hi, v = float(d.low), float(d.high), float(value)
    if d.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 0.0 if hi == lo else (v - lo) / (hi - lo)


def encode(params: dict[str, Any], space: dict[str, BaseDistribution]) -> list[float]:
    """Features of one configuration: [0, 1] numerics (log for log ranges), one-hot categoricals."""
    row: list[float] = []
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            row += [float(params[name] == c) for c in d.choices]
        else:
            row.append(_unit(params[name], d))
    return row


def _draw(rng: np.random.Generator, d: BaseDistribution) -> Any:
    """One random value of a distribution, in its external representation."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[int(rng.integers(len(d.choices)))]
    return _from_unit(rng.random(), d)


def _from_unit(u: float, d: FloatDistribution | IntDistribution) -> Any:
    """The value at position u in [0, 1] of a numeric range (log range for log distributions)."""
    lo, hi = float(d.low), float(d.high)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if d.log else lo + u * (hi - lo)
    step = getattr(d, "step", None)
    if isinstance(d, IntDistribution):
        step = step or 1
        return int(min(d.high, max(d.low, d.low + round((x - lo) / step) * step)))
    if step is not None:
        x = lo + round((x - lo) / step) * step
    return float(min(hi, max(lo, x)))


class BoundarySampler(optuna.samplers.BaseSampler):
    """Maximum-entropy sampling of P(divergent | params) (see the module docstring)."""

    def __init__(self, *, seed: int = 0, n_startup: int = 8, explore: float = 0.2, n_candidates: int = N_CANDIDATES):
        if not 0 <= explore <= 1:
            raise ValueError(f"`0 <= explore <= 1` must hold, but got ({explore=}).")
        self.seed = seed
        self.n_startup = n_startup
        self.explore = explore
        self.n_candidates = n_candidates
        self._space = IntersectionSearchSpace(include_pruned=True)

    def _rng(self, number: int, salt: str = "") -> np.random.Generator:
        return np.random.default_rng([self.seed, number, zlib.crc32(salt.encode())])

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's generator is derived from (seed, trial number)."""

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._space.calculate(study)
        return {name: d for name, d in space.items() if not d.single()}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        rng = self._rng(trial.number)
        finished = study.get_trials(deepcopy=False, states=LABELLED_STATES)
        labelled = [(t, divergent_label(t.user_attrs)) for t in finished if set(search_space) <= set(t.params)]
        labelled = [(t, y) for t, y in labelled if y is not None]
        if len(labelled) < self.n_startup or rng.random() < self.explore:
            return {}  # random: the independent sampler fills every parameter
        y = np.array([int(label) for _, label in labelled])
        if y.min() == y.max():
            return {}  # one class only: no boundary to seek yet
        X = np.array([encode(t.params, search_space) for t, _ in labelled])
        pool = [{n: _draw(rng, d) for n, d in search_space.items()} for _ in range(self.n_candidates)]
        p = _fit_predict(X, y, np.array([encode(c, search_space) for c in pool]))
        entropy = -(p * np.log(p + 1e-12) + (1 - p) * np.log(1 - p + 1e-12))
        return pool[int(np.argmax(entropy))]

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        d = param_distribution
        if trial.number < self.n_startup and not d.single():  # the start: stratified (module docstring)
            order = np.random.default_rng([self.seed, zlib.crc32(param_name.encode())])
            if isinstance(d, CategoricalDistribution):
                return d.choices[int(order.permutation(len(d.choices))[trial.number % len(d.choices)])]
            stratum = int(order.permutation(self.n_startup)[trial.number])
            u = (stratum + self._rng(trial.number, param_name).random()) / self.n_startup
            return _from_unit(u, d)
        seed = int(self._rng(trial.number, param_name).integers(2**31))
        return optuna.samplers.RandomSampler(seed=seed).sample_independent(study, trial, param_name, d)

    def proposals(self, study: optuna.Study, numbers: Sequence[int]) -> list[dict[str, Any]]:
        """What the sampler would propose for trials ``numbers`` now (for tests and inspection)."""
        out = []
        for n in numbers:
            fake = optuna.trial.create_trial(state=TrialState.RUNNING, params={}, distributions={})
            fake.number = n
            out.append(self.sample_relative(study, fake, self.infer_relative_search_space(study, fake)))
        return out


def _fit_predict(X: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """P(divergent) of each candidate from a GP classifier fitted on (X, y).

    Kernel: a constant times an anisotropic RBF (one length scale per feature: a factor that does
    not matter gets a long one).  Length scales start at 0.3 of a unit range (a boundary varies over
    a fraction of the range) and are fitted within [0.05, 5] (from a grid step to flat); the
    amplitude within [0.5, 50]: on separable labels the likelihood keeps rising with the amplitude,
    and a wider bound only made the fit slower (0.7 s against 0.6 s for 40 trials) without moving
    the boundary.  One L-BFGS run (no restarts) keeps it deterministic.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    kernel = ConstantKernel(5.0, (0.5, 50.0)) * RBF(np.full(X.shape[1], 0.3), (0.05, 5.0))
    gpc = GaussianProcessClassifier(kernel=kernel, random_state=0, n_restarts_optimizer=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gpc.fit(X, y)
        return gpc.predict_proba(candidates)[:, 1]
