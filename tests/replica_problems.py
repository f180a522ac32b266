"""Problems for tests/training/test_replicas.py: one whose residual is non-finite for some seeds only."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pinnlab.problems import Problem, uniform


class HalfSeedsNaN(Problem):
    """u_x + u_yy + log(x - 1/2): finite where every point has x > 1/2.

    ``sample`` puts all points in x > 0.6 or, for the other seeds, over all of [0, 1] (some x < 1/2:
    the residual is NaN at step 0), decided by the seed's first draw.
    """

    name = "half_seeds_nan"
    coords = ("x", "y")
    derivatives = ("u_x", "u_yy")

    @property
    def domain(self):
        return np.zeros(2), np.ones(2)

    def sample(self, rng):
        lo = 0.6 if rng.random() < 0.5 else 0.0
        return {"residual": uniform(rng, [lo, 0.0], [1.0, 1.0], 24)}

    def pde(self, x, d):
        return d["u_x"] + d["u_yy"] + tf.math.log(x[:, 0:1] - 0.5)

    def heldout(self, rng, n):
        return uniform(rng, [0.6, 0.0], [1.0, 1.0], n)
