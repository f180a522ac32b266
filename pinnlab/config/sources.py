"""Where a config comes from: YAML text, presets, base chains and dotted overrides.

:mod:`pinnlab.config` validates; this module only reads and merges, so both stay short enough to
hold in mind.  YAML is read strictly: a key given twice is an error naming it and its lines (YAML
itself keeps the last one silently), and ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3``).
A config names a ``base`` (a preset name or another YAML file, relative to the file) and holds only
overrides of it; ``--set dotted.key=value`` overrides apply last.

Files are read defensively (:func:`read_yaml_file`), since a path can name anything: only regular
files are opened (a FIFO would block the read forever, ``/dev/zero`` never ends), at most
:data:`MAX_FILE_BYTES` of them, as UTF-8.  YAML is limited before it is turned into Python objects:
at most :data:`MAX_YAML_DEPTH` levels of nesting (PyYAML composes recursively, so thousands of levels
end in a RecursionError) and :data:`MAX_YAML_NODES` nodes counted with every alias expanded (a
"billion laughs" file is a few hundred bytes whose aliases expand to gigabytes once the config is
copied, validated or logged).  Each refusal is a one-line ConfigError naming the file.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pinnlab.core.errors import ConfigError

__all__ = [
    "dict_without",
    "load_yaml",
    "read_yaml_file",
    "MAX_FILE_BYTES",
    "MAX_YAML_NODES",
    "MAX_YAML_DEPTH",
    "preset_names",
    "deep_merge",
    "resolve_bases",
    "parse_override",
    "apply_overrides",
    "flatten",
    "EXCLUSIVE",
]


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


# The shipped configs and sweeps are under 4 KB and 60 nodes, 5 levels deep; a config of the sizes
# below is not something a person wrote, and refusing it keeps a hostile file from costing memory.
MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_YAML_NODES = 100_000  # nodes with aliases expanded: a 100,000-choice categorical still fits
MAX_YAML_DEPTH = 100  # nesting levels; far below Python's recursion limit, which PyYAML would hit


class _YamlTooBig(Exception):
    pass


class _LimitedLoader(_Loader):
    """Refuses nesting deeper than :data:`MAX_YAML_DEPTH` while composing (before recursion fails)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _YamlTooBig(f"line {mark.line + 1} is nested more than {MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past :data:`MAX_YAML_NODES` nodes or
    :data:`MAX_YAML_DEPTH` levels, or refer to themselves: counted on the composed node graph, each
    shared node once (memoised), so a bomb is measured in microseconds without being expanded."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        else:
            kids = []
        if done:
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            entered.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise _YamlTooBig(
                    f"line {node.start_mark.line + 1} expands to more than {MAX_YAML_NODES:,} values "
                    "(aliases such as *a are copied where they are used); write the values out or use fewer aliases"
                )
            if depth[key] > MAX_YAML_DEPTH:
                raise _YamlTooBig(
                    f"line {node.start_mark.line + 1} nests aliases more than {MAX_YAML_DEPTH} levels deep"
                )
            continue
        if key in size:
            continue
        if key in entered:
            raise _YamlTooBig(f"line {node.start_mark.line + 1}: an alias refers to a value that contains it")
        entered.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse one YAML document strictly (see the module docstring); errors are one-line ConfigErrors."""
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        raise ConfigError("", f"{source}: {exc}; keep one") from None
    except _YamlTooBig as exc:
        raise ConfigError("", f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if problem == "but found another document":
            problem = "a file holds one YAML document; remove the second `---` and what follows, or merge them"
        raise ConfigError("", f"{source}:{where} is not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def shown_path(path: str | Path) -> str:
    """``path`` quoted for a one-line message: escapes undecodable bytes, shortens a long path."""
    text = str(path)
    if len(text) <= 120:
        return repr(text)
    return f"{text[:60]!r}...({len(os.fsencode(text)):,} bytes)"


def _home(path: Path, what: str) -> Path:
    """``~`` and ``~user`` expanded as a shell would, or one line when there is no such home."""
    if not str(path).startswith("~"):
        return path
    try:
        return path.expanduser()
    except RuntimeError:
        user = str(path).split("/", 1)[0]
        raise ConfigError(
            "",
            f"{what} {shown_path(path)}: {user} cannot be expanded (no such user or no home "
            "directory); give the path without ~",
        ) from None


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _regular(mode: int, shown: str, what: str) -> None:
    if stat.S_ISDIR(mode):
        raise ConfigError("", f"{what} {shown} cannot be read: it is a directory; give a YAML file")
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise ConfigError("", f"{what} {shown} is {kind}, not a regular file; give a YAML file")


def read_yaml_file(path: str | Path, what: str = "config file") -> dict:
    """The YAML mapping in the regular file ``path`` (``~`` expanded); empty or not a mapping: refused.

    Checked with ``stat`` before it is opened, so a FIFO, a device or a directory is refused without
    a read that could block or never end; opened non-blocking and checked again (the path may have
    changed in between); at most :data:`MAX_FILE_BYTES` read; decoded as UTF-8 (a BOM is dropped).
    """
    path = _home(Path(path), what)
    shown = shown_path(path)
    try:
        st = os.stat(path)
    except ValueError:  # a NUL byte
        raise ConfigError("", f"{what} {shown} cannot be read (a path cannot contain a NUL byte)") from None
    except FileNotFoundError:
        raise ConfigError("", f"{what} {shown} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"{what} {shown} cannot be read ({exc.strerror})") from None
    _regular(st.st_mode, shown, what)
    too_big = (
        f"{what} {shown} is larger than {MAX_FILE_BYTES >> 20} MiB, the limit for a YAML file "
        "(configs and sweeps are a few KB)"
    )
    if st.st_size > MAX_FILE_BYTES:
        raise ConfigError("", too_big)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError("", f"{what} {shown} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        _regular(os.fstat(f.fileno()).st_mode, shown, what)
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError("", f"{what} {shown} cannot be read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("", too_big)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "", f"{what} {shown} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    label = str(path) if len(str(path)) <= 120 and str(path).isprintable() else shown
    data = load_yaml(text, label)
    if data is None:
        raise ConfigError("", f"{what} {shown} is empty (or only comments): give a YAML mapping, e.g. base: seed")
    if not isinstance(data, dict):
        raise ConfigError("", f"{label} must be a YAML mapping, got {type(data).__name__}")
    return data


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("pinnlab.presets").iterdir() if p.name.endswith(".yaml"))


def _read_source(source: str | Path, relative_to: Path | None = None) -> tuple[dict, Path | None, str]:
    """Read a preset by name or a YAML file by path; return (mapping, its directory, identity)."""
    path = Path(source)
    if relative_to is not None and not path.is_absolute() and not str(path).startswith("~"):
        path = relative_to / path
    try:
        is_path = path.suffix in (".yaml", ".yml") or str(path).startswith("~") or path.exists()
    except (OSError, ValueError) as exc:  # a name longer than the file system allows; a NUL byte
        why = getattr(exc, "strerror", None) or "a name cannot contain a NUL byte"
        raise ConfigError("", f"{shown_path(source)} is neither a YAML file nor a preset ({why})") from None
    if is_path:
        data = read_yaml_file(path, "config file")
        path = _home(path, "config file")
        where: Path | None = path.parent
        label = str(path)
        ident = str(path.resolve())
    else:
        name = str(source)
        if name not in preset_names():
            raise ConfigError(
                "",
                f"{shown_path(name)} is neither a YAML file nor a preset (presets: {', '.join(preset_names())})",
            )
        text = resources.files("pinnlab.presets").joinpath(f"{name}.yaml").read_text()
        where, label = None, f"preset {name}"
        ident = label
        data = load_yaml(text, label)
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


def resolve_bases(source: str | Path, relative_to: Path | None = None, _seen: tuple = (), _names: tuple = ()) -> dict:
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


def dict_without(cfg, dotted: Iterable[str]) -> dict[str, Any]:
    """``cfg.to_dict()`` without the fields (``section.leaf``) or sections (``section``) named."""
    d = cfg.to_dict()
    for path in dotted:
        section, _, leaf = path.partition(".")
        if leaf:
            d[section].pop(leaf, None)
        else:
            d.pop(section, None)
    return d
