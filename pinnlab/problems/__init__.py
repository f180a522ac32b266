"""Problems: a domain, seeded point samplers, named residual terms and, where known, the exact
solution.  One module per problem; ``PROBLEMS`` maps the YAML name to the class.  A user problem is
named by import path, ``problem.name: mypkg.problems:Burgers``, and subclasses :class:`Problem`.

Contract (checked for every registered problem in tests/test_problems.py): the residual of the
exact solution is ≈ 0 on sampled points, and samples are reproducible from the seed.
"""

from __future__ import annotations

from pinnlab.errors import ConfigError
from pinnlab.problems.base import Problem, Residuals, box_boundary, grid, uniform
from pinnlab.registry import Registry

__all__ = ["PROBLEMS", "Problem", "Residuals", "resolve_problem", "uniform", "grid", "box_boundary"]

PROBLEMS: Registry[type[Problem]] = Registry("problem", allow_import=True)

from pinnlab.problems import convection1d, helmholtz2d, poisson1d, poisson2d, seed  # noqa: E402

for _cls in (seed.Seed, poisson2d.Poisson2D, convection1d.Convection1D, helmholtz2d.Helmholtz2D,
             poisson1d.Poisson1D):
    PROBLEMS.register(_cls.name, _cls)


def resolve_problem(name: str, params: dict | None = None) -> Problem:
    """Instantiate a problem by YAML name (or import path) with validated params."""
    cls = PROBLEMS.get(name, "problem.name")
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise ConfigError("problem.name", f"{name!r} is not a pinnlab.problems.Problem subclass")
    return cls.from_params(params or {})
