"""Registries of pluggable parts, keyed by the name used in YAML.

One ``Registry`` per kind (problems, activations, formulations, optimizers, ...).  A duplicate name
raises; a miss raises :class:`~pinnlab.core.errors.UnknownNameError` listing the valid names.  A name of
the form ``package.module:Name`` is imported (never ``eval``-ed), so users extend pinnlab without
touching it: ``problem.name: mypkg.problems:Burgers``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pinnlab.core.errors import ConfigError, UnknownNameError, first_line

__all__ = ["Registry", "import_object"]

T = TypeVar("T")


class ImportFailed(UnknownNameError):
    """A ``package.module:Name`` whose module cannot be imported: the reason, not a list of names."""

    def __init__(self, kind: str, name: str, field: str, message: str):
        self.kind, self.name, self.valid = kind, name, []
        ConfigError.__init__(self, field, f"{name!r} {message}")


_MISSING = object()


def import_object(path: str, kind: str = "object", field: str = "") -> object:
    """Import ``package.module:Name``; raise UnknownNameError with the reason on failure."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UnknownNameError(kind, path, ["package.module:Name"], field)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportFailed(
            kind,
            path,
            field,
            f"is not an importable module path ({exc}; modules are looked up in the current directory and on PYTHONPATH)",
        ) from None
    except Exception as exc:  # the user's module raised while it was imported
        raise ImportFailed(
            kind, path, field, f"cannot be imported: {module_name} raised {type(exc).__name__}: {first_line(exc)}"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownNameError(kind, path, [f"an attribute of {module_name}"], field) from None


class Registry(Generic[T]):
    """Name -> entry map with decorator registration and helpful misses."""

    def __init__(self, kind: str, allow_import: bool = False):
        self.kind = kind
        self.allow_import = allow_import
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T = _MISSING) -> Callable[[T], T] | T:  # type: ignore[assignment]
        """Register ``entry`` under ``name``; usable as ``@REGISTRY.register("name")``."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add if entry is _MISSING else add(entry)

    def get(self, name: str, field: str = "") -> T:
        if name in self._entries:
            return self._entries[name]
        if self.allow_import and isinstance(name, str) and ":" in name:
            return import_object(name, self.kind, field)  # type: ignore[return-value]
        raise UnknownNameError(self.kind, name, self.names(), field)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or (self.allow_import and isinstance(name, str) and ":" in name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]
