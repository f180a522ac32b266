"""``poisson2d``: −Δu = 2π² sin(πx) sin(πy) on [0,1]², u = 0 on the boundary.

Exact solution u = sin(πx) sin(πy).  Defaults: 2000 uniform interior points and 100 per edge.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from pinnlab.problems.base import Params, Problem, box_boundary, tf, uniform


class PoissonParams(Params):
    n_residual: int = Field(2000, gt=0)
    n_boundary: int = Field(400, ge=4)  # split evenly over the four edges


class Poisson2D(Problem):
    name = "poisson2d"
    coords = ("x", "y")
    Params = PoissonParams
    derivatives = ("u_xx", "u_yy")
    constraint_terms = ("boundary",)

    @property
    def domain(self):
        return np.zeros(2), np.ones(2)

    def sample(self, rng):
        lo, hi = self.domain
        return {
            "residual": uniform(rng, lo, hi, self.params.n_residual),
            "boundary": np.concatenate(box_boundary(rng, lo, hi, self.params.n_boundary // 4)),
        }

    def forcing(self, x):
        return 2 * math.pi**2 * tf.sin(math.pi * x[:, 0:1]) * tf.sin(math.pi * x[:, 1:2])

    def pde(self, x, d):
        return -(d["u_xx"] + d["u_yy"]) - self.forcing(x)

    def constraints(self, net, points):
        return {"boundary": net(points["boundary"])}

    def exact(self, x):
        return tf.sin(math.pi * x[:, 0:1]) * tf.sin(math.pi * x[:, 1:2])
