"""Memory a run will need, estimated from its config before anything is created.

Why: a config can be valid and still impossible on the machine.  ``training.steps=1e12`` asks for a
history of 36 TiB (one preallocated row per step of the budget), ``model.width=1000000`` for a
trillion weights, ``problem.params.n_residual=1e12`` for 16 TB of points; without this check each would
pass validation, open an MLflow run and then crash (or take 4 GB quietly for ``steps=1e8``).  The
estimate below is coarse but errs high only by small factors, so a refusal always means "cannot
fit", and the message carries the estimate and the field to lower.

The limit (:func:`memory_limit`): ``PINNLAB_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) if set,
else :data:`MEMORY_FRACTION` of the physical memory (or of a smaller cgroup limit in a container).
Half, because a sweep runs several workers side by side and TensorFlow needs room of its own.

What is counted (8 bytes per float64, 4 or 8 per model float):

* history: ``budget x (per-step + diagnostics columns) x 8``, twice (the preallocated array and
  the DataFrame built from it);
* points: every training point set plus the held-out and evaluation points, ``n x d x 8``, twice
  (NumPy and TensorFlow copies);
* model: weights, gradients, two optimizer moments and a copy for the update ratio, 5 per weight;
* activations: ``batch x width x depth`` per derivative pass (``1 + d x max_order`` of them, three
  tensors kept per layer by the nested tapes);
* NTK weighting (``loss.weighting.scheme: ntk``): per-point gradients, ``batch x weights`` up to
  :data:`NTK_EXACT_FLOATS` (then chunked), or with the Hutchinson estimator one probe vector over
  the batch and one gradient per probe, ``ntk_probes x (batch + weights)``.

``training.replicates: k`` trains k stacked networks, each with its own points, weights, optimizer
state, activations and history, so every part is multiplied by k.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from pinnlab.core import names
from pinnlab.core.errors import ConfigError, first_line
from pinnlab.problems.base import Problem

__all__ = [
    "budget",
    "MEMORY_FRACTION",
    "Estimate",
    "estimate",
    "memory_limit",
    "check_resources",
    "declared_counts",
    "sampled_counts",
    "human_bytes",
]

MEMORY_FRACTION = 0.5
NTK_EXACT_FLOATS = 2**24  # pinnlab.numerics.ntk's max_floats: exact per-point gradients are chunked past it
EVAL_POINTS_PER_AXIS = 101  # Problem.eval_points' default grid


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def _parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not m:
        raise ConfigError("PINNLAB_MEMORY_LIMIT", f"{text!r} is not allowed: give bytes, e.g. 8G or 8000000000")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def _physical() -> int | None:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    try:
        text = open("/sys/fs/cgroup/memory.max").read().strip()
        if text.isdigit():
            total = min(total or int(text), int(text))
    except OSError:
        pass
    return total


def memory_limit() -> tuple[int | None, str]:
    """(bytes a run may use, where that number comes from); None when it cannot be known."""
    text = os.environ.get("PINNLAB_MEMORY_LIMIT")
    if text:
        return _parse_bytes(text), "PINNLAB_MEMORY_LIMIT"
    total = _physical()
    if total is None:
        return None, "unknown"
    return int(
        total * MEMORY_FRACTION
    ), f"half of this machine's {human_bytes(total)}; PINNLAB_MEMORY_LIMIT sets another"


@dataclass(frozen=True)
class Part:
    name: str
    bytes: float
    field: str
    detail: str


@dataclass(frozen=True)
class Estimate:
    parts: tuple[Part, ...]

    @property
    def total(self) -> float:
        return sum(p.bytes for p in self.parts)

    @property
    def largest(self) -> Part:
        return max(self.parts, key=lambda p: p.bytes)


def declared_counts(problem) -> dict[str, int]:
    """Point counts read from the problem's parameters named ``n_*`` (``n_residual`` ->
    ``residual``), without sampling: what a config asks for before NumPy is asked to allocate it."""
    params = problem.params_dict()
    return {
        k[2:]: v for k, v in params.items() if k.startswith("n_") and isinstance(v, int) and not isinstance(v, bool)
    }


def sampled_counts(problem) -> dict[str, int]:
    """Point counts of the problem's training sets, sampled once with seed 0; a user problem whose
    sampler fails is a ConfigError naming it."""
    try:
        return problem.point_counts()
    except MemoryError:
        raise ConfigError(
            "problem.params", "sampling the training points ran out of memory: ask for fewer points"
        ) from None
    except ConfigError:
        raise
    except Exception as exc:
        name = f"{type(problem).__module__}:{type(problem).__qualname__}"
        raise ConfigError("problem.name", f"{name}.sample() raised {type(exc).__name__}: {first_line(exc)}") from None


def _budget(cfg, n_residual: int) -> tuple[int, str]:
    """The run's steps (:func:`pinnlab.config.budget`) and the field that set them."""

    t = cfg.training
    steps = budget(cfg, n_residual)[2]
    if t.steps:
        return steps, "training.steps"
    if cfg.optimizer.name == "lbfgs":
        return steps, "optimizer.lbfgs_max_iter"
    return steps, "training.epochs" if t.epochs else "training.default_steps"


def estimate(cfg, problem, counts: dict[str, int]) -> Estimate:
    """The memory estimate of one run of ``cfg`` (see the module docstring)."""
    m = cfg.model
    d = len(problem.coords)
    n_res = counts.get("residual", sum(counts.values()))
    n_points = sum(counts.values()) + cfg.divergence.heldout_points
    if type(problem).eval_points is _base_eval_points():
        n_points += EVAL_POINTS_PER_AXIS**d
    terms = len(problem.term_names()) + (cfg.regularization.l2 > 0) + (cfg.regularization.l1 > 0)
    step_cols = 3 + terms + (terms if cfg.loss.weighting.scheme != "fixed" else 0)
    diag_cols = 6 * (m.depth + 1) + terms + len(problem.derivatives) + 1
    budget, budget_field = _budget(cfg, n_res)
    columns = step_cols + diag_cols
    weights = d * m.width + m.width + (m.depth - 1) * (m.width * m.width + m.width) + m.width + 1
    itemsize = 8 if m.dtype == "float64" else 4
    batch = cfg.training.batch_size or n_res
    passes = 1 + d * problem.max_order
    parts = [
        Part(
            "history", 2 * 8 * budget * columns, budget_field, f"{budget:,} steps x {columns} columns x 8 bytes, twice"
        ),
        Part(
            "points", 2 * 8 * n_points * d, "problem.params", f"{n_points:,} points x {d} coordinates x 8 bytes, twice"
        ),
        Part("model", 5 * itemsize * weights, "model.width", f"{weights:,} weights x {itemsize} bytes x 5"),
        Part(
            "activations",
            3 * itemsize * batch * m.width * m.depth * passes,
            "training.batch_size" if cfg.training.batch_size else "problem.params",
            f"batch {batch:,} x width {m.width:,} x depth {m.depth} x {passes} derivative passes x 3",
        ),
    ]
    w = cfg.loss.weighting
    if w.scheme == "ntk":
        if w.ntk_estimator == "hutchinson":
            parts.append(
                Part(
                    "NTK probes",
                    itemsize * w.ntk_probes * (batch + weights),
                    "loss.weighting.ntk_probes",
                    f"{w.ntk_probes:,} probes x (batch {batch:,} + {weights:,} weights) x {itemsize} bytes",
                )
            )
        else:
            floats = min(batch * weights, NTK_EXACT_FLOATS)
            parts.append(
                Part(
                    "NTK gradients",
                    itemsize * floats,
                    "model.width",
                    f"{floats:,} per-point gradient floats x {itemsize} bytes",
                )
            )
    k = cfg.training.replicates
    if k > 1:
        parts = [Part(p.name, k * p.bytes, p.field, f"{p.detail}, x {k} replicates") for p in parts]
    return Estimate(tuple(parts))


def _base_eval_points():

    return Problem.eval_points


def _value(cfg, field: str) -> Any:
    node: Any = cfg
    for part in field.split("."):
        node = getattr(node, part, None)
    return node


def check_resources(cfg, problem, counts: dict[str, int]) -> None:
    """Raise a ConfigError naming the largest part when the estimate exceeds :func:`memory_limit`."""
    limit, why = memory_limit()
    if limit is None:
        return
    est = estimate(cfg, problem, counts)
    if est.total <= limit:
        return
    part = est.largest
    field = part.field
    if cfg.training.replicates > 1 and est.total / cfg.training.replicates <= limit:
        field = "training.replicates"  # one replicate fits: the number of them is what to lower
        value = cfg.training.replicates
    elif field == "problem.params" and counts:
        key = max(counts, key=counts.get)
        field = f"problem.params.n_{key}" if f"n_{key}" in problem.params_dict() else field
        value = counts[key]
    else:
        value = _value(cfg, field)
    value_text = "" if value is None or isinstance(value, dict) else f"{value!r} "
    raise ConfigError(
        field,
        f"{value_text}needs about {human_bytes(est.total)} of memory, {human_bytes(part.bytes)} of it for the "
        f"{part.name} ({part.detail}), more than the limit of {human_bytes(limit)} ({why}); lower it",
    )


def budget(cfg, n_residual: int) -> tuple[int | None, int, int]:
    """``(batch size or None for full batch, steps per epoch, steps of the run)`` for ``n_residual``
    residual points: ``training.steps``, else epochs of mini-batches, else ``training.default_steps`` (L-BFGS:
    ``optimizer.lbfgs_max_iter`` iterations); only the residual set is mini-batched."""
    t = cfg.training
    bs = t.batch_size
    batch = None if (bs is None or bs >= n_residual or t.resample) else bs
    per_epoch = 1 if batch is None else n_residual // batch
    if names.OPTIMIZERS.get(cfg.optimizer.name).full_batch:  # one full-batch iteration per step
        return (
            batch,
            per_epoch,
            t.steps or (cfg.optimizer.lbfgs_max_iter if cfg.optimizer.name == "lbfgs" else t.default_steps),
        )
    return batch, per_epoch, t.steps or (t.epochs * per_epoch if t.epochs else t.default_steps)
