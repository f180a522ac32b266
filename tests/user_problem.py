"""A problem defined outside pinnlab, loaded by import path ``tests.user_problem:Heat1D``."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from pinnlab.problems import Problem, uniform


class Heat1D(Problem):
    """u_t = u_xx on [0, 1] × [0, 0.5], exact u = exp(−π² t) sin(πx)."""

    name = "heat1d"
    coords = ("x", "t")
    derivatives = ("u_t", "u_xx")

    @property
    def domain(self):
        return np.zeros(2), np.array([1.0, 0.5])

    def sample(self, rng):
        return {"residual": uniform(rng, *self.domain, 256)}

    def pde(self, x, d):
        return d["u_t"] - d["u_xx"]

    def exact(self, x):
        return tf.exp(-(math.pi**2) * x[:, 1:2]) * tf.sin(math.pi * x[:, 0:1])


class Blows(Heat1D):
    """A residual that is non-finite by construction (division by zero), to test NaN forensics."""

    name = "blows"

    def pde(self, x, d):
        return d["u_t"] / tf.zeros_like(d["u_t"])
