"""The :class:`Problem` interface and point samplers shared by the problems.

``tf`` here is TensorFlow imported on first use (:class:`LazyModule`): the problem modules write
``tf.sin(...)`` as usual, and TensorFlow loads when a residual or exact solution is first computed,
not when a config reads a problem's parameters, coordinates or terms.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

__all__ = [
    "Problem",
    "Params",
    "Residuals",
    "LazyModule",
    "uniform",
    "grid",
    "box_boundary",
    "SCALE_MAX",
    "MAX_FREQUENCY",
    "INT32_MAX",
    "INT64_MAX",
    "Scale",
    "Frequency",
    "BOUND_REASONS",
]

from pinnlab.backend import import_tensorflow
from pinnlab.core.errors import ConfigError
from pinnlab.core.validation import (  # noqa: E402  re-exported: problems declare their params with them
    BOUND_REASONS,
    INT32_MAX,
    INT64_MAX,
    MAX_FREQUENCY,
    SCALE_MAX,
    Frequency,
    Scale,
    config_error_from_validation,
)


class LazyModule:
    """Stands for the module ``name`` and imports it at the first attribute access.

    Unlike ``importlib.util.LazyLoader`` it puts nothing into ``sys.modules`` until then, so
    "has TensorFlow been imported?" keeps its plain meaning.  Attribute access goes through
    ``importlib.import_module`` each time (a dictionary lookup once loaded); problems touch ``tf``
    while a step is traced, not per step.
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if self._name == "tensorflow":
            return getattr(import_tensorflow(), attr)  # quietly (see pinnlab.backend)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._name!r})"


if TYPE_CHECKING:
    import tensorflow as tf
else:
    tf = LazyModule("tensorflow")

# A term's residual: per-point values (batch, 1), or a list of such parts whose losses are summed
# (e.g. the four edges of a square, each reduced on its own as in Wang et al.'s code).
Residual = Union["tf.Tensor", list["tf.Tensor"]]
Residuals = tuple[dict[str, Residual], dict[str, "tf.Tensor"]]  # (terms, derivatives used)
Net = Callable[["tf.Tensor"], "tf.Tensor"]


class _ClassProperty:
    """A read-only property computed from the class, so it reads the same on the class and on
    an instance (``Seed.max_order == Seed(...).max_order``)."""

    def __init__(self, fget: Callable[[type], Any]):
        self.fget = fget
        self.__doc__ = fget.__doc__

    def __get__(self, obj: object, cls: type) -> Any:
        return self.fget(cls)


class Params(BaseModel):
    """Base of a problem's parameters: unknown keys fail; ints and bools are strict (floats take
    ints); floats are finite (as in every config, see pinnlab.config.StrictModel) and, unless a
    field declares a tighter bound (:data:`Frequency`), at most :data:`SCALE_MAX` in size: a
    parameter of a user problem is a coefficient of its equation as much as a built-in one's."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _scale(self):
        for name, value in self:
            if isinstance(value, float) and abs(value) > SCALE_MAX:
                raise ConfigError(
                    f"problem.params.{name}",
                    f"{value!r} is not allowed: its size must be at most {SCALE_MAX:g} ({BOUND_REASONS[SCALE_MAX]})",
                )
        return self


class Problem:
    """Base class.  Subclasses set the class attributes and implement the abstract methods.

    The class attributes are the problem's metadata, readable without TensorFlow: ``name``,
    ``coords``, ``Params`` (the pydantic model of ``problem.params``), ``residual_terms``,
    ``constraint_terms`` (every term :meth:`constraints` can return; :meth:`constraint_names`
    picks those the parameters switch on), ``derivatives`` and the derived ``max_order``.

    Shapes: point sets are ``(n, d)`` float arrays with ``d = len(coords)``; network outputs and
    residuals are ``(n, 1)``.  ``pde`` and ``constraints`` are traced into the compiled training
    step without AutoGraph: branch on Python values (parameters) freely, but on tensor values only
    with ``tf.where`` / ``tf.cond``.
    """

    name: ClassVar[str]
    coords: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[Params]] = Params
    residual_terms: ClassVar[tuple[str, ...]] = ("residual",)
    constraint_terms: ClassVar[tuple[str, ...]] = ()  # e.g. ("boundary",), ("initial", "boundary")
    derivatives: ClassVar[tuple[str, ...]] = ()  # derivatives the PDE residual uses, e.g. ("u_x",)

    def __init__(self, params: Params):
        self.params = params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Problem:
        try:
            p = cls.Params.model_validate(params)
        except ValidationError as exc:
            raise config_error_from_validation(exc, cls.Params, "problem.params") from None
        return cls(p)

    @classmethod
    def definition_errors(cls) -> list[str]:
        """What keeps this class from being a usable problem (empty when nothing), without
        TensorFlow: checked when a config names it, so a user problem that lacks a method or names
        a derivative over an unknown coordinate fails before any run exists."""
        errors = []
        coords = getattr(cls, "coords", None)
        if not (isinstance(coords, tuple) and coords and all(isinstance(c, str) and len(c) == 1 for c in coords)):
            errors.append(f"coords must be a non-empty tuple of one-letter names such as ('x', 't'), got {coords!r}")
            coords = ()
        missing = [m for m in ("domain", "sample") if getattr(cls, m) is getattr(Problem, m)]
        if "residual" in cls.residual_terms and cls.pde is Problem.pde:
            missing.append("pde")
        if missing:
            errors.append(f"it does not define {', '.join(missing)} (see pinnlab.problems.Problem)")
        for name in cls.derivatives:
            if not isinstance(name, str) or not (
                name == "u" or (name.startswith("u_") and len(name) > 2 and all(c in coords for c in name[2:]))
            ):
                errors.append(
                    f"derivative {name!r} is not u_ followed by its coordinates {', '.join(coords) or '-'} "
                    "(e.g. u_x, u_tt, u_xy)"
                )
        return errors

    def check_pde_reads(self, name: str) -> None:
        """A ConfigError naming every derivative ``pde`` reads that ``derivatives`` does not list.

        ``pde`` runs once, eagerly, on two points of the domain with a dict of ones holding ``u``
        and the listed derivatives; reading any other key raises at once instead of after the
        TensorFlow start-up, inside the traced step, as an internal error.  Any other exception of
        that call is left to training to report (this check judges the keys read, nothing else).
        """
        reads: list[str] = []

        class Listed(dict):
            def __missing__(self, key):
                reads.append(key)
                raise KeyError(key)

        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # 1/u, log(u_x): not our business
                warnings.simplefilter("ignore")
                x = uniform(np.random.default_rng(0), *self.domain, 2).astype(np.float32)
                ones = np.ones((2, 1), np.float32)
                self.pde(x, Listed({k: ones for k in ("u", *self.derivatives)}))
        except Exception:
            pass
        else:
            return  # a read caught by pde itself (d.get, try/except) breaks nothing
        if reads:
            listed = ", ".join(self.derivatives) or "none"
            raise ConfigError(
                "problem.name",
                f"{name!r}: pde reads d[{reads[0]!r}], which its derivatives do not "
                f"list ({listed}); add it to derivatives (d['u'] is u itself)",
            )

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    # ---- to implement -------------------------------------------------------------------
    @property
    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners of the box that holds the domain."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Training point sets, keyed by set name; ``"residual"`` holds the collocation points."""
        raise NotImplementedError

    def pde(self, x: tf.Tensor, d: dict[str, tf.Tensor]) -> tf.Tensor:
        """The PDE residual at ``x`` from the derivatives named in ``derivatives``."""
        raise NotImplementedError

    def constraint_names(self) -> tuple[str, ...]:
        """Names of the terms :meth:`constraints` returns with these parameters (by default all
        ``constraint_terms``)."""
        return self.constraint_terms

    def constraints(self, net: Net, points: dict[str, tf.Tensor]) -> dict[str, Residual]:
        """Boundary / initial / other terms, keyed as in :meth:`constraint_names`."""
        return {}

    def rowwise(self) -> bool:
        """True when every residual row depends only on the same row of the points (and a set is
        split only into equal blocks of rows): what stacked replicates (``training.replicates``)
        need.  A residual that reduces over the points returns False."""
        return True

    def exact(self, x: tf.Tensor) -> tf.Tensor | None:
        """The exact solution at ``x: (n, d)`` as ``(n, 1)``, or None when unknown."""
        return None

    def eval_points(self) -> np.ndarray:
        """Fixed evaluation grid for the relative L2 error."""
        lo, hi = self.domain
        return grid(lo, hi, [101] * len(self.coords))

    # ---- derived ------------------------------------------------------------------------
    @_ClassProperty
    def max_order(cls) -> int:
        """Highest derivative order the residual uses: ``("u_x", "u_yy")`` -> 2 (``"u"`` is 0)."""
        return max((len(n) - 2 if n.startswith("u_") else 0 for n in cls.derivatives), default=0)

    @property
    def has_exact(self) -> bool:
        return self.exact(tf.zeros((1, len(self.coords)), tf.float64)) is not None

    def term_names(self) -> tuple[str, ...]:
        return tuple(self.residual_terms) + tuple(self.constraint_names())

    def point_counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.sample(np.random.default_rng(0)).items()}

    def heldout(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Fresh residual points never trained on (for the held-out residual check)."""
        return uniform(rng, *self.domain, n)

    def pde_residuals(self, net: Net, x: tf.Tensor) -> Residuals:
        """``({"residual": r}, {"u_x": ..., ...})`` at the points ``x``."""
        from pinnlab.numerics.derivatives import parse_derivative, partials

        idx = {name: parse_derivative(name, self.coords) for name in self.derivatives}
        u, ds = partials(net, x, idx.values())
        named = {name: ds[i] for name, i in idx.items()}
        named.setdefault("u", u)
        return {"residual": self.pde(x, named)}, {k: v for k, v in named.items() if k in self.derivatives}

    def residuals(self, net: Net, points: dict[str, tf.Tensor]) -> Residuals:
        """All loss terms' residuals on one batch of point sets."""
        terms, derivs = self.pde_residuals(net, points["residual"])
        terms.update(self.constraints(net, points))
        return terms, derivs

    def exact_numpy(self, x: np.ndarray) -> np.ndarray | None:
        u = self.exact(tf.constant(x, tf.float64))
        return None if u is None else np.asarray(u)


def uniform(rng: np.random.Generator, lo, hi, n: int) -> np.ndarray:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return lo + (hi - lo) * rng.random((n, len(lo)))


def grid(lo, hi, counts) -> np.ndarray:
    """Tensor-product grid including both ends, ``(prod(counts), d)``, first coordinate slowest."""
    axes = [np.linspace(a, b, c) for a, b, c in zip(lo, hi, counts)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def box_boundary(rng: np.random.Generator, lo, hi, n_per_face: int) -> list[np.ndarray]:
    """Uniform points on each face of a box: a list of ``2 d`` arrays ``(n_per_face, d)``."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    faces = []
    for axis in range(len(lo)):
        for value in (lo[axis], hi[axis]):
            pts = uniform(rng, lo, hi, n_per_face)
            pts[:, axis] = value
            faces.append(pts)
    return faces
