"""Errors that pinnlab raises for bad input.

Every error renders as one line that names the offending field (a dotted config path where there is
one), the value received and what is allowed.  The CLI prints it and exits with code 2.
"""

from __future__ import annotations

__all__ = ["PinnlabError", "ConfigError", "UnknownNameError", "first_line"]


class PinnlabError(Exception):
    """Base class of pinnlab's user-facing errors (bad input, never a diverging run)."""


class ConfigError(PinnlabError, ValueError):
    """A config, preset, override or sweep file is invalid.

    ``field`` is the dotted path of the offending entry (``model.width``), or ``""`` for the file.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry (an activation, problem, optimizer, ...)."""

    def __init__(self, kind: str, name: object, valid: list[str], field: str = ""):
        self.kind = kind
        self.name = name
        self.valid = valid
        super().__init__(field, f"{name!r} is not one of {', '.join(valid)} (unknown {kind})")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return self.args[0]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): for one-line errors
    that quote a library's failure (a driver's multi-line connection error, an HTTP error body)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
