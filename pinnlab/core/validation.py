"""Bounds on the numbers of a config and of problem params, and pydantic's errors as one-line
:class:`~pinnlab.core.errors.ConfigError` s naming the field, the value and what is allowed."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from pinnlab.core.errors import ConfigError

__all__ = [
    "SCALE_MAX",
    "MAX_FREQUENCY",
    "INT32_MAX",
    "INT64_MAX",
    "Scale",
    "Frequency",
    "BOUND_REASONS",
    "config_error_from_validation",
]

# Bounds on numbers of a config (and of problem params) that end up in float32 tensors.  Finite
# in Python is not enough: 1e300 becomes inf in float32 and the run "diverges" at step 0 for a
# reason that has nothing to do with training.
#
# SCALE_MAX bounds every factor (a learning rate, a loss weight, a penalty coefficient, Huber's δ,
# an equation's coefficient): the product of any two (lr x weight, weight x l2, δ², c² in a squared
# residual) is at most 1e38, below float32's largest finite number 3.4e38.
SCALE_MAX = 1e19
# A coefficient of a coordinate inside sin(·) (a wave number a in sin(aπx), a speed β in
# sin(x − βt)): neighbouring float32 numbers near 1 are 2**-23 apart, so at a = 1e6 the phase aπx
# already moves 0.37 rad between them, and the exact solution and forcing of a larger a are
# float32 rounding noise (and its residual (aπ)² u, squared, overflows from a ≈ 1e9 on).
MAX_FREQUENCY = 1e6
# TensorFlow makes a Python int an int32 tensor when it fits, else int64, and fails past int64
# (a decay_steps of 1e23 did, after the run had started).  Seeds are held in 32 bits.  Counts that
# size memory (steps, widths, points) are bounded far lower by pinnlab.config.resources.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
Scale = Annotated[float, Field(ge=-SCALE_MAX, le=SCALE_MAX)]
Frequency = Annotated[float, Field(ge=-MAX_FREQUENCY, le=MAX_FREQUENCY)]
# The reason a bound above is what it is, appended to the one-line error that cites it.
BOUND_REASONS = {
    SCALE_MAX: "so that two such factors multiply to a finite float32, whose largest is 3.4e38",
    -SCALE_MAX: "so that two such factors multiply to a finite float32, whose largest is 3.4e38",
    MAX_FREQUENCY: "past it sin(c·x) is float32 rounding noise",
    -MAX_FREQUENCY: "past it sin(c·x) is float32 rounding noise",
    INT32_MAX: "NumPy and TensorFlow hold it in 32 bits",
    INT64_MAX: "TensorFlow holds integers in at most 64 bits",
}


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the (nested) model that ``loc[:-1]`` points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return sorted(model.model_fields)


def config_error_from_validation(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigError:
    """The first pydantic error as a one-line ConfigError with its dotted path."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(loc))
    original = err.get("ctx", {}).get("error")
    if isinstance(original, ConfigError):  # raised by a validator that knows its field already
        return ConfigError(original.field or path, original.message)
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return ConfigError(path, f"unknown key{hint}")
    if err["type"] == "missing":  # the input is the whole enclosing mapping: not worth quoting
        return ConfigError(path, "is required but missing")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return ConfigError(path, msg[len("Value error, ") :])
    value = err.get("input")
    limit = (
        next(iter(err.get("ctx", {}).values()), None) if err["type"].startswith(("less_than", "greater_than")) else None
    )
    why = f" ({BOUND_REASONS[limit]})" if isinstance(limit, (int, float)) and limit in BOUND_REASONS else ""
    return ConfigError(path, f"{value!r} is not allowed: {msg[0].lower()}{msg[1:]}{why}")
