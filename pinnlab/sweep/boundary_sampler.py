"""``sampler: {name: boundary}``: spend the trials where training is on the edge of diverging.

TPE optimises: it crowds the trials into the region with the best objective and says little about
where, and how likely, training fails.  This sampler maps the failure region instead.  Trials are
labelled divergent or not (:func:`pinnlab.config.replicates.divergent_label`: a divergent outcome, or
``divergence_rate >= 0.5`` with replicates; crashes have no label), and every parameter is mapped
to the unit interval: numeric ones scaled over their range, in log space for log-sampled ones
(learning rates act multiplicatively; the stability threshold is a ratio), categorical ones
one-hot.  A *level* is one combination of the categorical values (one activation, say).  Each
trial then comes from one of two phases.

**Bisection**, while some level has no *bracket* (a divergent and a non-divergent trial of its
own) or fewer than ``n_bisect`` labels.  The level served first is the one without a bracket,
then the one with the fewest labels (running trials count, so parallel workers spread over the
levels), then the one with the widest bracket; ties in a seeded order.  Its next point, in the
unit cube of the numeric parameters:

* with a bracket: the midpoint of its closest divergent / non-divergent pair (in one dimension,
  plain bisection of the bracket; in several, a step onto the boundary surface between the pair);
* with labels of one class only: the other class lies, over all trials, in direction v (the mean
  of the other class's points minus that of this class's); the level's next point is the nearest
  other-class trial of *another* level beyond its own furthest trial along v, i.e. the other
  levels' side of the boundary.  Levels usually differ by a fraction of the range (the critical
  learning rate moves with the activation by a factor, not by decades), so this point mostly gives
  the level a bracket at once, as narrow as the other levels' knowledge.  With no such trial, it
  goes halfway from its furthest trial to the edge of the range along v (halving the unlabelled
  side), and a level already at the edge is left to the GP (its boundary lies beyond the range);
* without labels: the midpoint of the closest opposite pair over all levels (the other levels'
  boundary estimate);
* while all trials share one class: the centre of the largest empty ball among them inside the
  cube (the first trial goes to the centre, the next to the middle of the larger unexplored side),
  so the other class is sought by halving what is left, not by jumping to the end of the range.

Why: with a few labels a level has no information of its own about where its boundary is, and the
classifier below predicts 0.5 along the whole level, so maximum entropy picks an arbitrary point
of it (at 8 trainings over 3 activations the GP-only sampler was worse than random: 0.26 decades
against 0.19, see docs/benchmarks.md).  Bisection halves the bracket with every label, the best a
single-probe search can do along one axis, and sharing the other levels' bracket makes a level's
first probes land near its boundary instead of halving the whole range again.

**Maximum entropy**, once every level has a bracket and ``n_bisect`` labels: P(divergent |
parameters) is fitted with scikit-learn's ``GaussianProcessClassifier`` on the encoded trials, and
of a pool of ``N_CANDIDATES`` random configurations the one with P closest to 0.5 is proposed (the
most uncertain outcome, where a label teaches the model most about the boundary).  Why a GP and not
a logistic regression: the boundary in (log learning rate, width, activation) space need not be a
hyperplane (the critical learning rate moves with the width, differently per activation), which an
RBF kernel follows; and far from every trial its probability returns to 0.5, so it also goes to
unexplored regions.  Its O(n^3) fit is milliseconds on the tens to hundreds of trials of a sweep.
(The report's estimate, :mod:`pinnlab.analysis.boundary`, is a logistic fit per level: a few
parameters that bootstrap well, for an interval.)  With more than ``MAX_LEVELS`` levels the
bisection phase is skipped: bracketing every combination would take the whole budget, and the
GP shares information across levels through its one-hot length scales instead.

Defaults and their reasons (``sampler.n_startup``, ``sampler.n_bisect``, ``sampler.explore``).
Numbers are the benchmark's error at 8 trainings over 3 activations (``benchmarks/studies/boundary.py``,
mean over 10 sampler seeds; decades of learning rate):

* ``n_startup = 0``: no random start.  The first trial goes to the centre of every numeric range
  at a seeded level (the bisection's first probe; Optuna hands the relative sampler no search space
  before a trial has finished, so :meth:`sample_independent` places it).  Trials started in
  parallel before the first one finishes are random.  ``n_startup > 0`` gives a stratified random
  start instead: trial n takes categorical level n mod k (in a seeded order) and, for each numeric
  parameter, a random point of stratum n of ``n_startup`` equal slices of its (log) range (a Latin
  hypercube).  A random point is rarely near the boundary, and the levels that copy it as their
  other-class point get a wide bracket: 0.105 with a start of 1, 0.143 with 2, 0.146 with 4,
  against 0.070 with none.  (The start was 8 when the GP did everything: its fit needs both
  classes spread over the space; at 8 trainings that left it nothing.)
* ``n_bisect = 4`` labels per level before the GP: a bracket plus two halvings, and the four units
  per level below which the report's logistic estimate gives none (``MIN_UNITS``).
* ``explore = 0.2``: in the GP phase, one trial in five is random.  Pure entropy search can keep
  refining one stretch of the boundary while a second one (a non-monotone pocket) is never found;
  random trials bound that risk and also give the unbiased sample that a rate estimate over the
  whole space needs.  The bisection phase does not explore: it visits every level by
  construction, and a random trial costs an eighth of a budget of 8.

Variants measured and not used: docs/design.md.

Determinism: every random draw of trial n comes from a generator seeded with (seed, n), and the
bisection is a function of the finished (and running) trials, so the proposals are a function of
the seed and the trials, whatever process runs the trial (workers, journal, PostgreSQL: the sampler
holds no state between trials).  Parameters outside the relative search space (the first trials, a
conditional parameter) come from Optuna's RandomSampler seeded the same way.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from pinnlab.config.replicates import divergent_label

__all__ = ["BoundarySampler", "encode", "N_CANDIDATES", "MAX_LEVELS"]

N_CANDIDATES = 1000  # random pool per proposal: predicting 1,000 points takes ~40 ms, the fit ~0.6 s
MAX_LEVELS = 16  # more categorical combinations than this: no per-level bisection (module docstring)
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


def _closest_pair(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(distance, midpoint) of the closest pair of a point of ``a`` and one of ``b``; None if one is empty."""
    if not len(a) or not len(b):
        return None
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(d[i, j]), (a[i] + b[j]) / 2


def _empty_ball(points: np.ndarray, rng: np.random.Generator, dim: int) -> np.ndarray:
    """Centre of (about) the largest ball inside the unit cube that holds none of ``points``."""
    pool = np.vstack([np.full((1, dim), 0.5), rng.random((N_CANDIDATES, dim))])
    room = np.minimum(pool, 1 - pool).min(axis=1)
    if len(points):
        room = np.minimum(room, np.linalg.norm(pool[:, None, :] - points[None, :, :], axis=2).min(axis=1))
    return pool[int(np.argmax(room))]


class BoundarySampler(optuna.samplers.BaseSampler):
    """Per-level bisection, then maximum-entropy sampling of P(divergent | params) (module docstring)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        n_startup: int = 0,
        n_bisect: int = 4,
        explore: float = 0.2,
        n_candidates: int = N_CANDIDATES,
    ):
        if not 0 <= explore <= 1:
            raise ValueError(f"`0 <= explore <= 1` must hold, but got ({explore=}).")
        self.seed = seed
        self.n_startup = n_startup
        self.n_bisect = n_bisect
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
        if not search_space or trial.number < self.n_startup:
            return {}  # the start: the independent sampler fills every parameter (stratified)
        rng = self._rng(trial.number)
        finished = study.get_trials(deepcopy=False, states=LABELLED_STATES)
        labelled = [(t, divergent_label(t.user_attrs)) for t in finished if set(search_space) <= set(t.params)]
        labelled = [(t, y) for t, y in labelled if y is not None]
        running = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number != trial.number
        ]
        proposal = self._bisect(search_space, labelled, running, rng)
        if proposal is not None:
            return proposal
        if rng.random() < self.explore:
            return {}  # random: the independent sampler fills every parameter
        y = np.array([int(label) for _, label in labelled])
        if not len(y) or y.min() == y.max():
            return {}  # one class only: no boundary to seek yet
        X = np.array([encode(t.params, search_space) for t, _ in labelled])
        pool = [{n: _draw(rng, d) for n, d in search_space.items()} for _ in range(self.n_candidates)]
        p = _fit_predict(X, y, np.array([encode(c, search_space) for c in pool]))
        entropy = -(p * np.log(p + 1e-12) + (1 - p) * np.log(1 - p + 1e-12))
        return pool[int(np.argmax(entropy))]

    def _bisect(
        self,
        space: dict[str, BaseDistribution],
        labelled: list[tuple[FrozenTrial, bool]],
        running: list[FrozenTrial],
        rng: np.random.Generator,
    ) -> dict[str, Any] | None:
        """The bisection phase's proposal (module docstring), or None once it is over."""
        cat = [n for n, d in space.items() if isinstance(d, CategoricalDistribution)]
        num = [n for n in space if n not in cat]
        levels = list(itertools.product(*(space[n].choices for n in cat)))  # type: ignore[attr-defined]
        if not num or len(levels) > MAX_LEVELS:
            return None
        order = np.random.default_rng([self.seed, zlib.crc32(b"levels")]).permutation(len(levels))
        rank = {levels[int(i)]: r for r, i in enumerate(order)}
        key = {lv: i for i, lv in enumerate(levels)}
        U = np.array([[_unit(t.params[n], space[n]) for n in num] for t, _ in labelled]).reshape(-1, len(num))
        Y = np.array([bool(y) for _, y in labelled], bool)
        L = np.array([key.get(tuple(t.params[n] for n in cat), -1) for t, _ in labelled], int)
        pending = [key.get(tuple(t.params.get(n) for n in cat), -1) for t in running]
        queue = []
        for i, lv in enumerate(levels):
            own = L == i
            pair = _closest_pair(U[own & Y], U[own & ~Y])
            if pair is not None and own.sum() >= self.n_bisect:
                continue  # bracketed and enough labels: left to the GP
            n = int(own.sum()) + pending.count(i)
            queue.append(((pair is not None, n, -(pair[0] if pair else math.inf), rank[lv]), i, own, pair))
        for _, i, own, pair in sorted(queue, key=lambda q: q[0]):
            target = pair[1] if pair is not None else _probe(U, Y, own, rng)
            if target is not None:
                params = dict(zip(cat, levels[i]))
                params.update({n: _from_unit(float(u), space[n]) for n, u in zip(num, target)})
                return params
        return None

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        d = param_distribution
        first = trial.number < self.n_startup or (trial.number == 0 and self.n_startup == 0)
        if first and not d.single():  # the start (module docstring)
            order = np.random.default_rng([self.seed, zlib.crc32(param_name.encode())])
            if isinstance(d, CategoricalDistribution):
                return d.choices[int(order.permutation(len(d.choices))[trial.number % len(d.choices)])]
            if self.n_startup == 0:
                return _from_unit(0.5, d)  # the bisection's first probe: the centre
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


def _probe(U: np.ndarray, Y: np.ndarray, own: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The next point of a level without a bracket (module docstring); None when its boundary lies
    beyond the range.  U: unit-cube points of the labelled trials, Y: their labels, own: this level's."""
    if not own.any():  # no label: the other levels' boundary, else the largest unexplored ball
        pair = _closest_pair(U[Y], U[~Y])
        return pair[1] if pair is not None else _empty_ball(U, rng, U.shape[1])
    c = Y[own][0]
    if (Y == c).all():  # one class everywhere: no side to go to yet
        return _empty_ball(U, rng, U.shape[1])
    v = U[Y != c].mean(axis=0) - U[Y == c].mean(axis=0)  # towards the other class
    p = U[own][int(np.argmax(U[own] @ v))]  # this level's trial furthest that way
    ahead = U[~own & (Y != c)]
    ahead = ahead[(ahead - p) @ v > 1e-9]
    if len(ahead):  # the other levels' nearest trial of the other class, beyond this level's
        return ahead[int(np.argmin(np.linalg.norm(ahead - p, axis=1)))]
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(v > 0, (1 - p) / v, np.where(v < 0, -p / v, np.inf)).min()
    if not np.isfinite(reach) or reach * np.linalg.norm(v) < 1e-3:
        return None  # at the edge of the range already
    return p + reach * v / 2  # halfway from its furthest trial to the edge of the range


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
