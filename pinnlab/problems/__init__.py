"""Problems: a domain, seeded point samplers, named residual terms and, where known, the exact
solution.  One module per problem; ``PROBLEMS`` maps the YAML name to the class.  A user problem is
named by import path, ``problem.name: mypkg.problems:Burgers``, and subclasses :class:`Problem`.

Contract (checked for every registered problem in tests/problems/test_problems.py): the residual of the
exact solution is ≈ 0 on sampled points, samples are reproducible from the seed, and the terms and
derivatives produced are the ones the class declares.

This package imports without TensorFlow, so validating a config (``problem.params`` against the
problem's ``Params``, loss-term names, batch size against the point counts) stays fast.  A problem's
metadata is class-level data (``name``, ``coords``, ``Params``, ``residual_terms``,
``constraint_terms``, ``derivatives``, ``max_order``) and its samplers are NumPy; the methods that
compute (``pde``, ``constraints``, ``exact``) use ``tf`` from :mod:`pinnlab.problems.base`, which
imports TensorFlow at its first use, and ``pinnlab.numerics.derivatives`` is imported inside the methods
that differentiate.  Splitting each problem into a metadata class and a TensorFlow class was the
other design considered: it keeps every import at the top, but puts one problem's equation, terms
and parameters in two places that must agree, where the chosen form keeps one file per problem that
reads like the math.  A user problem may import TensorFlow at its top; importing it by path then
loads TensorFlow, which only costs that config the start-up time.
"""

from __future__ import annotations

from pinnlab.core.errors import ConfigError
from pinnlab.core.registry import Registry
from pinnlab.problems.base import Problem, Residuals, box_boundary, grid, uniform

__all__ = ["PROBLEMS", "Problem", "Residuals", "resolve_problem", "uniform", "grid", "box_boundary"]

PROBLEMS: Registry[type[Problem]] = Registry("problem", allow_import=True)

from pinnlab.problems import convection1d, helmholtz2d, poisson1d, poisson2d, seed  # noqa: E402

for _cls in (seed.Seed, poisson2d.Poisson2D, convection1d.Convection1D, helmholtz2d.Helmholtz2D, poisson1d.Poisson1D):
    PROBLEMS.register(_cls.name, _cls)


def resolve_problem(name: str, params: dict | None = None) -> Problem:
    """Instantiate a problem by YAML name (or import path) with validated params."""
    cls = PROBLEMS.get(name, "problem.name")
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise ConfigError("problem.name", f"{name!r} is not a pinnlab.problems.Problem subclass")
    errors = cls.definition_errors()
    if errors:
        raise ConfigError("problem.name", f"{name!r} is not a usable problem: {'; '.join(errors)}")
    return cls.from_params(params or {})
