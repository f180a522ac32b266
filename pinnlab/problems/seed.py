"""``seed``: u_x + u_yy on the 60×60 grid of the Stack Overflow question pinnlab grew from.

The question's inputs are ``np.mgrid[-3:3:0.1, -3:3:0.1].reshape(2, -1).T`` (3600 points, the upper
end 3.0 excluded) and its loss the raw mean of u_x + u_yy, which has no boundary terms and is
unbounded below.  Parameters add what the accepted answer and the remedies need:

* ``constraint``: ``none`` (the question), ``anchor`` (one point, u(0,0) = ``anchor_value``), or
  ``dirichlet`` (u on the grid's edges taken from ``solution``);
* ``solution``: the known solution used by ``dirichlet``: ``poly`` u = x − y²/2
  (u_x + u_yy = 1 − 1 = 0) or ``exp_sin`` u = 0.1·eˣ·sin y (u_x + u_yy = u − u = 0).  The exact
  solution is known (and errors reported) only with ``dirichlet``; otherwise any harmonic-like u fits;
* ``literal``: the question's literal loss: ``df2 = gradients(df1, x)`` differentiates the *sum* of
  df1's columns, and ``df1[0, 0] + df2[0, 1]`` uses the batch's first sample only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pinnlab.problems.base import Params, Problem, Scale, tf

STEP = 0.1


class SeedParams(Params):
    constraint: Literal["none", "anchor", "dirichlet"] = "none"
    solution: Literal["poly", "exp_sin"] = "poly"
    anchor_value: Scale = 1.0  # u(0,0) − value is squared by the loss: see SCALE_MAX
    literal: bool = False


def _solution(name: str, x: tf.Tensor) -> tf.Tensor:
    X, Y = x[:, 0:1], x[:, 1:2]
    if name == "poly":
        return X - 0.5 * tf.square(Y)
    if name == "exp_sin":
        return 0.1 * tf.exp(X) * tf.sin(Y)
    raise ValueError(f"problem.params.solution: {name!r} is not one of poly, exp_sin")


class Seed(Problem):
    name = "seed"
    coords = ("x", "y")
    Params = SeedParams
    derivatives = ("u_x", "u_yy")
    constraint_terms = ("anchor", "boundary")  # one or none of them, by ``constraint``

    @property
    def domain(self):
        return np.array([-3.0, -3.0]), np.array([3.0 - STEP, 3.0 - STEP])

    @staticmethod
    def question_grid() -> np.ndarray:
        return np.mgrid[-3.0:3.0:STEP, -3.0:3.0:STEP].reshape(2, -1).T

    def sample(self, rng):
        x = self.question_grid()
        sets = {"residual": x}
        lo, hi = self.domain
        if self.params.constraint == "dirichlet":
            edge = np.isclose(x, lo).any(axis=1) | np.isclose(x, hi).any(axis=1)
            sets["boundary"] = x[edge]
        elif self.params.constraint == "anchor":
            sets["anchor"] = np.zeros((1, 2))
        return sets

    def heldout(self, rng, n):
        # The grid's cell centres: the points farthest from every training point.
        return np.mgrid[-3.0 + STEP / 2 : 3.0 - STEP : STEP, -3.0 + STEP / 2 : 3.0 - STEP : STEP].reshape(2, -1).T

    def eval_points(self):
        return self.heldout(None, 0)

    def pde(self, x, d):
        return d["u_x"] + d["u_yy"]

    def pde_residuals(self, net, x):
        if not self.params.literal:
            return super().pde_residuals(net, x)
        from pinnlab.numerics.derivatives import gradient_of_sum

        df1, df2 = gradient_of_sum(net, x)
        r = df1[0:1, 0:1] + df2[0:1, 1:2]  # the question's loss: first sample, mixed "u_yy"
        return {"residual": r}, {"u_x": df1[:, 0:1], "u_xy+u_yy": df2[:, 1:2]}

    def rowwise(self):
        return not self.params.literal  # the literal loss keeps only the batch's first sample

    def constraint_names(self):
        return {"none": (), "anchor": ("anchor",), "dirichlet": ("boundary",)}[self.params.constraint]

    def constraints(self, net, points):
        if self.params.constraint == "dirichlet":
            xb = points["boundary"]
            return {"boundary": net(xb) - _solution(self.params.solution, xb)}
        if self.params.constraint == "anchor":
            return {"anchor": net(points["anchor"]) - self.params.anchor_value}
        return {}

    def exact(self, x):
        if self.params.constraint != "dirichlet":
            return None
        return _solution(self.params.solution, x)

    def reference(self, x):
        """The chosen ``solution`` whatever the constraint (to show a fit is meaningless)."""
        return _solution(self.params.solution, x)
