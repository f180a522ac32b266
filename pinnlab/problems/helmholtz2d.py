"""``helmholtz2d``: Δu + λu = f on [−1, 1]² (Wang, Teng & Perdikaris 2021).

Exact solution u = sin(a1 π x) sin(a2 π y), from which f = (λ − (a1π)² − (a2π)²) u; defaults
a1 = 1, a2 = 4, λ = 1.  The boundary values are zero for integer a1, a2.  As in the authors'
reference code, 128 points per edge and 128 residual points (fresh every step with
``training.resample: true``), and the boundary term is the *sum* of the four edges' losses (a term
made of four parts, each reduced by the formulation on its own).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from pinnlab.problems.base import Frequency, Params, Problem, Scale, box_boundary, tf, uniform


class HelmholtzParams(Params):
    a1: Frequency = 1.0  # wave numbers inside sin(aπ·): see MAX_FREQUENCY
    a2: Frequency = 4.0
    lam: Scale = 1.0  # λ·u in the residual, squared by the loss: see SCALE_MAX
    n_residual: int = Field(128, gt=0)
    n_boundary_per_edge: int = Field(128, gt=0)


class Helmholtz2D(Problem):
    name = "helmholtz2d"
    coords = ("x", "y")
    Params = HelmholtzParams
    derivatives = ("u", "u_xx", "u_yy")
    constraint_terms = ("boundary",)

    @property
    def domain(self):
        return -np.ones(2), np.ones(2)

    def sample(self, rng):
        lo, hi = self.domain
        edges = box_boundary(rng, lo, hi, self.params.n_boundary_per_edge)
        return {
            "residual": uniform(rng, lo, hi, self.params.n_residual),
            "boundary": np.concatenate(edges),
        }

    def exact(self, x):
        p = self.params
        return tf.sin(p.a1 * math.pi * x[:, 0:1]) * tf.sin(p.a2 * math.pi * x[:, 1:2])

    def pde(self, x, d):
        p = self.params
        k2 = (p.a1 * math.pi) ** 2 + (p.a2 * math.pi) ** 2
        f = (p.lam - k2) * self.exact(x)
        return d["u_xx"] + d["u_yy"] + p.lam * d["u"] - f

    def constraints(self, net, points):
        xb = points["boundary"]
        r = net(xb) - self.exact(xb)
        return {"boundary": tf.split(r, 4, axis=0)}  # the four edges, in box_boundary's order
