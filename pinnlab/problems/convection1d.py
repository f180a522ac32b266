"""``convection1d``: u_t + β u_x = 0 on x ∈ [0, 2π), t ∈ [0, 1] (Krishnapriyan et al. 2021).

u(x, 0) = sin x, periodic in x: u(0, t) = u(2π, t).  Exact solution u = sin(x − βt).  Coordinates
are ``(x, t)``.  Defaults follow the setup measured for the reproduction: 1000 collocation points,
256 initial points, 100 boundary pairs; evaluation on the paper's 256 × 100 grid.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from pinnlab.problems.base import MAX_FREQUENCY, Params, Problem, tf, uniform

TWO_PI = 2 * math.pi


class ConvectionParams(Params):
    beta: float = Field(1.0, ge=0, le=MAX_FREQUENCY)  # a speed inside sin(x − βt): see MAX_FREQUENCY
    n_residual: int = Field(1000, gt=0)
    n_initial: int = Field(256, gt=0)
    n_boundary: int = Field(100, gt=0)


class Convection1D(Problem):
    name = "convection1d"
    coords = ("x", "t")
    Params = ConvectionParams
    derivatives = ("u_x", "u_t")
    constraint_terms = ("initial", "boundary")

    @property
    def domain(self):
        return np.array([0.0, 0.0]), np.array([TWO_PI, 1.0])

    def sample(self, rng):
        lo, hi = self.domain
        p = self.params
        x0 = rng.random((p.n_initial, 1)) * TWO_PI
        tb = rng.random((p.n_boundary, 1))
        return {
            "residual": uniform(rng, lo, hi, p.n_residual),
            "initial": np.concatenate([x0, np.zeros_like(x0)], axis=1),
            "boundary": np.concatenate([np.zeros_like(tb), tb], axis=1),  # x = 0; paired with x = 2π
        }

    def pde(self, x, d):
        return d["u_t"] + self.params.beta * d["u_x"]

    def constraints(self, net, points):
        x0 = points["initial"]
        xb = points["boundary"]
        shift = tf.constant([[TWO_PI, 0.0]], xb.dtype)
        return {
            "initial": net(x0) - tf.sin(x0[:, 0:1]),
            "boundary": net(xb) - net(xb + shift),
        }

    def exact(self, x):
        return tf.sin(x[:, 0:1] - self.params.beta * x[:, 1:2])

    def eval_points(self):
        xs = np.linspace(0, TWO_PI, 256, endpoint=False)
        ts = np.linspace(0, 1, 100)
        return np.stack([m.ravel() for m in np.meshgrid(xs, ts, indexing="ij")], axis=1)
