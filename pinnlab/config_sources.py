"""Where a config comes from: YAML text, presets, base chains and dotted overrides.

:mod:`pinnlab.config` validates; this module only reads and merges, so both stay short enough to
hold in mind.  YAML is read strictly: a key given twice is an error naming it and its lines (YAML
itself keeps the last one silently), and ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3``).
A config names a ``base`` (a preset name or another YAML file, relative to the file) and holds only
overrides of it; ``--set dotted.key=value`` overrides apply last.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pinnlab.errors import ConfigError

__all__ = ["load_yaml", "preset_names", "deep_merge", "resolve_bases", "parse_override", "apply_overrides", "flatten",
           "EXCLUSIVE"]


# --------------------------------------------------------------------------------------------
# YAML loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 insists on ``1.0e-3``)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping whose keys are unique: YAML keeps the last of two equal keys and drops the first
    silently, so a key given twice (one of them a forgotten edit) is an error naming it and its lines."""
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: SafeLoader reports it
            continue
        if first != key_node.start_mark.line + 1:
            raise _DuplicateKey(f"key {key!r} appears twice (lines {first} and {key_node.start_mark.line + 1})")
    return loader.construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    pass


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKey as exc:
        raise ConfigError("", f"{source}: {exc}; keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{source}:{where} is not valid YAML ({problem})") from None


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("pinnlab.presets").iterdir() if p.name.endswith(".yaml"))


def _read_source(source: str | Path, relative_to: Path | None = None) -> tuple[dict, Path | None, str]:
    """Read a preset by name or a YAML file by path; return (mapping, its directory, identity)."""
    path = Path(source)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    try:
        is_path = path.suffix in (".yaml", ".yml") or path.exists()
    except OSError as exc:  # a name longer than the file system allows
        raise ConfigError("", f"{str(source)[:60]!r}... is neither a YAML file nor a preset ({exc.strerror})") from None
    if is_path:
        try:
            if not path.is_file():
                raise ConfigError("", f"config file {str(source)!r} does not exist")
            text = path.read_text()
        except OSError as exc:
            raise ConfigError("", f"config file {str(source)!r} cannot be read ({exc.strerror})") from None
        where: Path | None = path.parent
        label = str(path)
        ident = str(path.resolve())
    else:
        name = str(source)
        if name not in preset_names():
            raise ConfigError(
                "",
                f"{name!r} is neither a YAML file nor a preset (presets: {', '.join(preset_names())})",
            )
        text = resources.files("pinnlab.presets").joinpath(f"{name}.yaml").read_text()
        where, label = None, f"preset {name}"
        ident = label
    data = load_yaml(text, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{label} must be a YAML mapping, got {type(data).__name__}")
    return data, where, ident


# Keys that say the same thing in two ways: an override of one clears the other inherited from a
# base, so `--set training.steps=50` on an epochs-based preset just works.  Both set in one
# mapping is still an error (TrainingConfig checks it).
EXCLUSIVE = {("training", "steps"): ("training", "epochs"), ("training", "epochs"): ("training", "steps")}


def deep_merge(base: Mapping, override: Mapping, _path: tuple = ()) -> dict:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        other = EXCLUSIVE.get(_path + (key,))
        if other is not None and other[-1] not in override:
            out.pop(other[-1], None)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value, _path + (key,))
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_bases(
    source: str | Path, relative_to: Path | None = None, _seen: tuple = (), _names: tuple = ()
) -> dict:
    """Read ``source`` and merge it over its ``base`` chain (presets or files)."""
    data, where, ident = _read_source(source, relative_to)
    names = _names + (str(source),)
    if ident in _seen:
        raise ConfigError("base", f"circular base chain: {' -> '.join(names)}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError("base", f"{base!r} must be a preset name or a YAML path")
    try:
        parent = resolve_bases(base, where, _seen + (ident,), names)
    except ConfigError as exc:
        if exc.field or getattr(exc, "located", False):
            raise
        located = ConfigError("base", f"{exc.message} (the base of {source})")
        located.located = True
        raise located from None
    return deep_merge(parent, data)


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.width=20"`` -> ``("model.width", 20)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", f"{text!r} must look like dotted.key=value")
    return key, load_yaml(raw, f"--set {key}") if raw.strip() else None


def apply_overrides(data: Mapping, overrides: Iterable[str | tuple[str, Any]]) -> dict:
    """Apply ``dotted.key=value`` overrides in order.  One of two :data:`EXCLUSIVE` keys replaces
    the other inherited from ``data``; both among the same overrides is an error (the later one
    would silently win)."""
    out = copy.deepcopy(dict(data))
    given: set[tuple[str, ...]] = set()
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        path = tuple(key.split("."))
        other = EXCLUSIVE.get(path)
        if other is not None and path[:-1] + other[-1:] in given:
            raise ConfigError(key, f"{'.'.join(path[:-1] + other[-1:])} is given too: set one of them, not both")
        given.add(path)
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: i + 1]), f"is {child!r}, not a mapping, so {key} cannot be set")
            node = child
        other = EXCLUSIVE.get(tuple(parts))
        if other is not None:
            node.pop(other[-1], None)
        node[parts[-1]] = value
    return out


# --------------------------------------------------------------------------------------------
# Validation


def flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for logging configs as flat params)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
