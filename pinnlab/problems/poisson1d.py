"""``poisson1d``: u_xx = f on [0, 1] with u = sin(aπx) (Wang, Yu & Perdikaris 2022, section 7.1).

f = −(aπ)² sin(aπx), Dirichlet data u(0) = 0, u(1) = sin(aπ) (0 for integer a); default a = 4,
the published case.  The point layout is the authors' notebook's, not a random draw: ``n_residual``
equally spaced residual points including both ends, and a boundary batch of ``n_boundary`` points,
half of them copies of x = 0 and half of x = 1 (so the boundary term has as many points as the
residual term and the two NTK blocks have the same size).  Sampling ignores the generator: the
layout is fixed; ``training.resample`` draws the same points.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from pinnlab.problems.base import Frequency, Params, Problem, tf


class Poisson1DParams(Params):
    a: Frequency = (
        4.0  # (bounded: MAX_FREQUENCY) u = sin(4πx): the frequency at which plain training fails in the paper
    )
    n_residual: int = Field(100, gt=1)  # the authors' 100 equally spaced points
    n_boundary: int = Field(100, ge=2)  # 50 copies of x = 0 and 50 of x = 1


class Poisson1D(Problem):
    name = "poisson1d"
    coords = ("x",)
    Params = Poisson1DParams
    derivatives = ("u_xx",)
    constraint_terms = ("boundary",)

    @property
    def domain(self):
        return np.zeros(1), np.ones(1)

    def sample(self, rng):
        p = self.params
        half = p.n_boundary // 2
        ends = np.concatenate([np.zeros(half), np.ones(p.n_boundary - half)])
        return {"residual": np.linspace(0.0, 1.0, p.n_residual)[:, None], "boundary": ends[:, None]}

    def exact(self, x):
        return tf.sin(self.params.a * math.pi * x)

    def pde(self, x, d):
        k = self.params.a * math.pi
        return d["u_xx"] + k**2 * tf.sin(k * x)

    def constraints(self, net, points):
        xb = points["boundary"]
        return {"boundary": net(xb) - self.exact(xb)}

    def eval_points(self):
        return np.linspace(0.0, 1.0, 1001)[:, None]
