"""Errors that pinnlab raises for bad input.

Every error renders as one line that names the offending field (a dotted config path where there is
one), the value received and what is allowed.  The CLI prints it and exits with code 2.
"""

from __future__ import annotations

__all__ = ["PinnlabError", "ConfigError", "UnknownNameError", "StoreError", "first_line", "display_url"]


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


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for output, tags, reports and errors)."""
    if "://" not in url or "@" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (any parse error): hide everything between scheme and host
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class StoreError(PinnlabError):
    """A store cannot be opened or read: the MLflow tracking store or the Optuna storage.

    One line: which store, its URI (password hidden), what went wrong and what to do, e.g.
    ``MLflow tracking store 'sqlite:////x/mlflow.db': cannot open it (unable to open database
    file); use a directory that can be created and written``.  Not a ConfigError: the input may be
    right and the store wrong (a server down, a file that is not a database), and the message names
    the store, not a command-line flag, whether it comes from the CLI or the Python API.
    """

    MLFLOW = "MLflow tracking store"
    OPTUNA = "Optuna storage"

    def __init__(self, store: str, uri: str, problem: str, fix: str = ""):
        self.store = store
        self.uri = display_url(uri)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{store} {self.uri!r}: {problem}" + (f"; {fix}" if fix else ""))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): for one-line errors
    that quote a library's failure (a driver's multi-line connection error, an HTTP error body)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
