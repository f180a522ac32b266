"""Hostile config values and files, generated where natural: one line, exit 2, nothing written.

Three tables, all in :data:`CASES` (id, argv, words the one error line must contain):

* a per-field corpus generated from the pydantic models: every leaf of :class:`RunConfig` and of
  every problem's ``Params``, with bad values chosen by the leaf's type (numbers: nan, inf, -inf,
  a bool, a string, a list, a value past its upper bound, a negative where the bound forbids it;
  names and literals: an unknown name, an empty string, a number; bools: 'maybe', 2), each given
  as ``pinnlab run PRESET --set FIELD=VALUE`` and asserted to name FIELD;
* finite values that would overflow later (float32 products, int64, sin phases, probe counts, a loss
  floor that would call a squared loss unbounded), through ``run`` and through a sweep's
  ``overrides:`` and ``space:``;
* hostile files and paths (alias bombs, 3,000-deep YAML, non-UTF-8, a FIFO, /dev/zero, a huge
  file, empty and comment-only files, tabs, several documents, scalars, ``~user``, names too long
  in bytes, NUL, a parent that is a file), as the config, as a ``base:`` of a config, and as the
  sweep file or its base.

The harness (:func:`check_one_line`, :func:`_listing`, :func:`_main`, the ``workdir`` fixture that
replaces training with a sentinel) is tests/cli/test_bad_input.py's; no case imports TensorFlow.
"""

from __future__ import annotations

import os
import time
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel

from pinnlab.config import MAX_NTK_PROBES, SCALE_MAX, RunConfig, load_config
from pinnlab.config.sources import MAX_FILE_BYTES, MAX_YAML_DEPTH
from pinnlab.problems import PROBLEMS
from tests.cli.test_bad_input import _listing, _main, check_one_line, workdir  # noqa: F401  (workdir: a fixture)

# ------------------------------------------------------------------------------------------
# The per-field corpus, generated from the models.

# Presets whose config reaches a field without other settings (the rest are reached from seed).
PRESET_OF_PROBLEM = {name: name for name in ("convection1d", "helmholtz2d", "poisson1d", "poisson2d", "seed")}
SKIP = {"problem.params", "problem.name", "name"}  # a mapping; checked by its own table; any string is a name


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the leaf type without Optional/Annotated, whether None is allowed)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation, optional
        else:
            return annotation, optional


def _bounds(metadata: list) -> tuple[float | None, float | None]:
    """(lowest allowed, highest allowed) from a field's annotated_types constraints."""
    lo = hi = None
    for m in metadata:
        if isinstance(m, annotated_types.Gt):
            lo = m.gt
        elif isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Lt):
            hi = m.lt
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return lo, hi


def leaves(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, list]]:
    """Every leaf field of ``model``: (dotted path, its type, its constraints)."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        leaf, _ = _unwrap(field.annotation)
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            out += leaves(leaf, path + ".")
        else:
            out.append((path, leaf, list(field.metadata)))
    return out


def bad_values(leaf: Any, metadata: list) -> list[tuple[str, str]]:
    """(case suffix, YAML text of a value the field must refuse) by the leaf's type."""
    if leaf is bool:
        return [("maybe", "maybe"), ("two", "2"), ("float", "0.5"), ("list", "[true]")]
    if typing.get_origin(leaf) is typing.Literal or leaf is str:
        return [("unknown", "nosuchname"), ("empty", "''"), ("number", "3"), ("list", "[tanh]")]
    if leaf in (int, float):
        lo, hi = _bounds(metadata)
        out = [
            ("nan", ".nan"),
            ("inf", ".inf"),
            ("-inf", "-.inf"),
            ("bool", "true"),
            ("string", "'ten'"),
            ("list", "[1]"),
            ("mapping", "{a: 1}"),
        ]
        if leaf is int:
            out += [("float", "2.5"), ("huge", str(10**23))]
        elif hi is not None:
            out.append(("huge", "1.0e+300"))
        if lo is not None and lo >= 0:
            out.append(("negative", "-1"))
        return out
    if typing.get_origin(leaf) is dict:
        return [("list", "[1]"), ("string", "'x'")]
    members = [m for m in typing.get_args(leaf) if m is not type(None)]
    if len(members) == 2 and sum(typing.get_origin(m) is list for m in members) == 1:  # a value or a list of them
        scalar = next(m for m in members if typing.get_origin(m) is not list)
        scalar, _ = _unwrap(scalar)
        cases = [c for c in bad_values(scalar, metadata) if c[0] not in ("list", "mapping")]
        return [
            *cases,
            *((f"list-{suffix}", f"[{text}]") for suffix, text in cases),
            ("empty-list", "[]"),
            ("mapping", "{a: 1}"),
        ]
    raise AssertionError(f"no bad values for {leaf!r}: extend bad_values")


def _field_cases() -> list[tuple[str, list[str], list[str]]]:
    cases = []
    for path, leaf, metadata in leaves(RunConfig):
        if path in SKIP:
            continue
        for suffix, text in bad_values(leaf, metadata):
            cases.append((f"field-{path}-{suffix}", ["run", "seed", "--set", f"{path}={text}"], [path]))
    for name, preset in PRESET_OF_PROBLEM.items():
        for param, leaf, metadata in leaves(PROBLEMS.get(name).Params, "problem.params."):
            for suffix, text in bad_values(leaf, metadata):
                if param.rpartition(".")[2].startswith("n_") and suffix == "huge":
                    continue  # a point count: the memory check names it (tests/cli/test_bad_input.py)
                cases.append(
                    (f"param-{name}-{param[15:]}-{suffix}", ["run", preset, "--set", f"{param}={text}"], [param])
                )
    return cases


FIELD_CASES = _field_cases()

# ------------------------------------------------------------------------------------------
# Finite values that overflow later, through run and through sweep files.

OVERFLOW = [
    # (id, preset, dotted path, value, words besides the path)
    ("beta-1e300", "convection1d", "problem.params.beta", "1.0e+300", ["1e+300", "1000000", "float32"]),
    ("beta-1e7", "convection1d", "problem.params.beta", "1.0e+7", ["1000000", "sin"]),
    ("helmholtz-a1-1e300", "helmholtz2d", "problem.params.a1", "1.0e+300", ["1000000"]),
    ("helmholtz-a2-negative-huge", "helmholtz2d", "problem.params.a2", "-1.0e+300", ["-1000000"]),
    ("helmholtz-lam-1e30", "helmholtz2d", "problem.params.lam", "1.0e+30", ["float32", "3.4e38"]),
    ("poisson1d-a-1e300", "poisson1d", "problem.params.a", "1.0e+300", ["1000000"]),
    ("anchor-value-1e300", "seed", "problem.params.anchor_value", "1.0e+300", ["float32"]),
    ("decay-steps-1e23", "seed", "optimizer.schedule.decay_steps", str(10**23), ["64 bits"]),
    ("weighting-every-1e23", "seed", "loss.weighting.every", str(10**23), ["64 bits"]),
    ("learning-rate-1e20", "seed", "optimizer.learning_rate", "1.0e+20", ["float32"]),
    ("weight-1e20", "poisson2d", "loss.weights.boundary", "1.0e+20", ["float32"]),
    ("l2-1e30", "seed", "regularization.l2", "1.0e+30", ["float32"]),
    ("weight-decay-1e30", "seed", "optimizer.weight_decay", "1.0e+30", ["float32"]),
    ("huber-delta-1e20", "seed", "loss.huber_delta", "1.0e+20", ["float32"]),
    ("clip-norm-1e39", "seed", "regularization.clip_norm", "1.0e+39", ["float32"]),
    ("ntk-probes-1e9", "poisson1d", "loss.weighting.ntk_probes", "1000000000", [str(MAX_NTK_PROBES)]),
    ("loss-floor-positive", "poisson2d", "divergence.loss_floor", "1000000.0", ["less than 0"]),
    ("loss-floor-zero", "poisson2d", "divergence.loss_floor", "0", ["less than 0"]),
    ("horizon-1e300", "seed", "divergence.horizon", "1.0e+300", ["1000000"]),
]
OVERFLOW_SEEDS = [
    (
        "replicate-seeds-past-int32",
        ["run", "poisson2d", "--set", "training.seed=2147483647", "--set", "training.replicates=2"],
        ["training.seed", "2147483648", "2147483647"],
    )
]
USER_SET = ["--set", "problem.name=userheat:Heat", "--set", "problem.params.k"]


def _sweep_text(base: str, path: str, value: str, where: str) -> str:
    vary = "model.depth: {low: 1, high: 2}" if path != "model.depth" else "model.width: {low: 5, high: 10}"
    if where == "overrides":
        return f"base: {base}\noverrides:\n  {path}: {value}\nspace:\n  {vary}\n"
    return f"base: {base}\nspace:\n  {path}: {{choices: [{value}]}}\n"


USER_PROBLEM = """
from pinnlab.problems.base import Params
from userprobs import BadDerivative  # tests/cli/test_bad_input.py's FILES: a domain and a sampler


class HeatParams(Params):
    k: float = 1.0  # no bound of its own: the Params base bounds every float


class Heat(BadDerivative):
    Params = HeatParams
    derivatives = ("u_t", "u_xx")

    def pde(self, x, d):
        return d["u_t"] - self.params.k * d["u_xx"]
"""

OVERFLOW_FILES = {
    f"ov-{where}-{cid}.yaml": _sweep_text(preset, path, value, where)
    for cid, preset, path, value, _ in OVERFLOW
    for where in ("overrides", "space")
}
OVERFLOW_FILES["userheat.py"] = USER_PROBLEM

OVERFLOW_CASES = (
    [
        (f"overflow-run-{cid}", ["run", preset, "--set", f"{path}={value}"], [path, *words])
        for cid, preset, path, value, words in OVERFLOW
    ]
    + [
        (f"overflow-sweep-{where}-{cid}", ["sweep", f"ov-{where}-{cid}.yaml"], [f"{where}.{path}"])
        for cid, preset, path, value, _ in OVERFLOW
        for where in ("overrides", "space")
    ]
    + [
        (
            f"overflow-user-param-{cid}",
            ["run", "seed", *USER_SET[:-1], f"{USER_SET[-1]}={value}"],
            ["problem.params.k", "1e+19", "float32"],
        )
        for cid, value in (("1e300", "1.0e+300"), ("minus-1e20", "-1.0e+20"))
    ]
    + OVERFLOW_SEEDS
)

# ------------------------------------------------------------------------------------------
# Hostile files and paths: as the config, as a config's base, as the sweep file, as a sweep's base.


def _bomb(levels: int = 9) -> str:
    """The "billion laughs": each level nine aliases of the one before (9**9 leaves once expanded)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "base: seed\n" + "\n".join(lines) + f"\nname: *a{levels - 1}\n"


HOSTILE = {
    # name: (text or bytes, words of the error)
    "bomb.yaml": (_bomb(), ["bomb.yaml", "expands to more than"]),
    "bomb_in_base_key.yaml": (
        "base: seed\nx: &x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"x{i}: &x{i} [" + ", ".join(["*x" + (str(i - 1) if i else "")] * 10) + "]\n" for i in range(6)),
        ["expands to more than"],
    ),
    "recursive.yaml": ("base: seed\nname: &r [*r]\n", ["refers to a value that contains it"]),
    "deep_flow.yaml": ("base: seed\nname: " + "[" * 3000 + "]" * 3000 + "\n", [f"more than {MAX_YAML_DEPTH} levels"]),
    "deep_block.yaml": (
        "".join(" " * i + f"k{i}:\n" for i in range(1000)) + " " * 1000 + "v: 1\n",
        [f"more than {MAX_YAML_DEPTH} levels"],
    ),
    "latin1.yaml": (b"base: seed\nname: caf\xe9\n", ["not UTF-8", "0xe9", "line 2"]),
    "utf16.yaml": ("base: seed\n".encode("utf-16"), ["not UTF-8"]),
    "huge.yaml": ("base: seed\n" + "#" * (MAX_FILE_BYTES + 10) + "\n", ["larger than 1 MiB"]),
    "empty.yaml": ("", ["empty"]),
    "comment.yaml": ("# nothing but a comment\n", ["empty"]),
    "tabs.yaml": ("base: seed\nmodel:\n\twidth: 3\n", ["tabs.yaml", "line 3", "not valid YAML"]),
    "two_docs.yaml": ("base: seed\n---\nbase: seed\n", ["two_docs.yaml", "one YAML document"]),
    "scalar.yaml": ("42\n", ["scalar.yaml", "mapping", "int"]),
    "string.yaml": ("just some words\n", ["string.yaml", "mapping", "str"]),
    "toplist.yaml": ("- base\n- seed\n", ["toplist.yaml", "mapping", "list"]),
    "binary.yaml": (bytes(range(256)) * 4, ["not UTF-8"]),
}
TOO_LONG_COMPONENT = "é" * 200 + ".yaml"  # 200 characters, 405 bytes: past NAME_MAX (255 bytes)
TOO_LONG_PATH = "d/" * 2100 + "x.yaml"  # 4,206 bytes: past PATH_MAX (4096)
PATHS = {
    # a path that names no readable YAML file: (the path, words of the error)
    "fifo": ("fifo.yaml", ["fifo.yaml", "FIFO", "not a regular file"]),
    "dev-zero": ("/dev/zero", ["/dev/zero", "character device"]),
    "directory": ("adir", ["adir", "directory"]),
    "parent-is-a-file": ("afile/x.yaml", ["afile/x.yaml", "Not a directory"]),
    "unknown-user": ("~nosuchuser4711/x.yaml", ["~nosuchuser4711", "cannot be expanded"]),
    "component-too-long": (TOO_LONG_COMPONENT, ["File name too long", "405 bytes"]),
    "path-too-long": (TOO_LONG_PATH, ["File name too long", "4,206 bytes"]),
    "missing": ("nothere.yaml", ["nothere.yaml", "does not exist"]),
}
SPACE = "space:\n  model.width: {low: 5, high: 10}\n"


def _base_files() -> dict[str, str]:
    """A config and a sweep file whose ``base:`` is each hostile file or path."""
    out = {}
    for name in HOSTILE:
        out[f"base_of_{name}"] = f"base: {name}\n"
        out[f"sweep_base_of_{name}"] = f"base: {name}\n{SPACE}"
    for key, (path, _) in PATHS.items():
        out[f"base_of_{key}.yaml"] = f"base: '{path}'\n"
        out[f"sweep_base_of_{key}.yaml"] = f"base: '{path}'\n{SPACE}"
    out["base_of_nul.yaml"] = 'base: "a\\0b.yaml"\n'
    out["sweep_base_of_nul.yaml"] = 'base: "a\\0b.yaml"\n' + SPACE
    return out


BASE_FILES = _base_files()

FILE_CASES = []
for _name, (_, _words) in HOSTILE.items():
    FILE_CASES += [
        (f"file-run-{_name}", ["run", _name], _words),
        (f"file-run-base-{_name}", ["run", f"base_of_{_name}"], ["base", *_words[-1:]]),
        (f"file-sweep-base-{_name}", ["sweep", f"sweep_base_of_{_name}"], ["base", *_words[-1:]]),
    ]
    if _name not in ("empty.yaml", "comment.yaml", "scalar.yaml", "string.yaml", "toplist.yaml"):
        FILE_CASES.append((f"file-sweep-{_name}", ["sweep", _name], _words))
for _key, (_path, _words) in PATHS.items():
    FILE_CASES += [
        (f"path-run-{_key}", ["run", _path], _words),
        (f"path-sweep-{_key}", ["sweep", _path], _words),
        (f"path-run-base-{_key}", ["run", f"base_of_{_key}.yaml"], ["base", *_words[1:]]),
        (f"path-sweep-base-{_key}", ["sweep", f"sweep_base_of_{_key}.yaml"], ["base", *_words[1:]]),
    ]
FILE_CASES += [
    ("path-run-base-nul", ["run", "base_of_nul.yaml"], ["base", "NUL"]),
    ("path-sweep-base-nul", ["sweep", "sweep_base_of_nul.yaml"], ["base", "NUL"]),
    ("file-sweep-empty", ["sweep", "empty.yaml"], ["sweep file", "empty"]),
    ("file-sweep-toplist", ["sweep", "toplist.yaml"], ["toplist.yaml", "mapping"]),
    ("file-sweep-scalar", ["sweep", "scalar.yaml"], ["scalar.yaml", "mapping"]),
    ("path-run-home-unset", ["run", "~/nothere-4711.yaml"], ["nothere-4711.yaml", "does not exist"]),
    ("path-sweep-home-unset", ["sweep", "~/nothere-4711.yaml"], ["nothere-4711.yaml", "does not exist"]),
]
ENV = {"path-run-home-unset": {"HOME": None}, "path-sweep-home-unset": {"HOME": None}}

CASES = FIELD_CASES + OVERFLOW_CASES + FILE_CASES


@pytest.fixture
def hostile(workdir, monkeypatch):
    """workdir plus every file above, a FIFO and an unreadable-as-path file."""
    for name, text in {**OVERFLOW_FILES, **BASE_FILES, **{k: v for k, (v, _) in HOSTILE.items()}}.items():
        path = workdir / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.mkfifo(workdir / "fifo.yaml")
    return workdir


def _expect_one_line(root: Path, argv: list[str], words: list[str], run) -> None:
    """``run(argv) -> (rc, stdout, stderr)``: one line naming ``words``, within 15 s, nothing written."""
    before = _listing(root)
    t0 = time.monotonic()
    rc, out, err = run(argv)
    seconds = time.monotonic() - t0
    check_one_line(rc, out, err, argv[0], words, seconds)
    assert seconds < 15, f"the error took {seconds:.1f} s"
    assert _listing(root) == before, f"written: {sorted(_listing(root) - before)}"


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_hostile_input(hostile, capsys, monkeypatch, request, argv, words):
    for key, value in ENV.get(request.node.callspec.id, {}).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)

    def in_process(argv):
        rc = _main(argv)
        return (rc, *capsys.readouterr())

    _expect_one_line(hostile, argv, words, in_process)


def test_the_corpus_is_generated_from_every_field():
    assert len({i for i, _, _ in CASES}) == len(CASES), "case ids must be unique"
    assert len(CASES) >= 300
    named = {a[3].partition("=")[0] for _, a, _ in FIELD_CASES}
    every = {p for p, _, _ in leaves(RunConfig)} - SKIP
    assert every <= named, f"fields without a case: {sorted(every - named)}"
    for name in PRESET_OF_PROBLEM:
        params = {p for p, _, _ in leaves(PROBLEMS.get(name).Params, "problem.params.")}
        assert params <= named, f"{name} params without a case: {sorted(params - named)}"


# ------------------------------------------------------------------------------------------
# Memory: replicates multiply the estimate.


def test_replicates_multiply_the_memory_estimate(workdir, capsys, monkeypatch):
    """A config that fits at replicates=1 is refused at 64, naming replicates, the estimate and its
    largest part (each replicate has its own points, weights, activations and history)."""
    monkeypatch.setenv("PINNLAB_MEMORY_LIMIT", "200M")
    sets = ["--set", "training.steps=20000"]
    assert load_config("poisson2d", ["training.steps=20000"]).training.replicates == 1  # fits
    before = _listing(workdir)
    rc = _main(["run", "poisson2d", *sets, "--set", "training.replicates=64"])
    out, err = capsys.readouterr()
    check_one_line(
        rc, out, err, "run", ["training.replicates", "64", "GiB", "activations", "x 64 replicates", "200 MiB"], 0
    )
    assert _listing(workdir) == before


def test_ntk_probes_count_in_the_memory_estimate(workdir, capsys, monkeypatch):
    """Hutchinson probes hold a probe vector and a gradient each: a count within MAX_NTK_PROBES can
    still not fit, and the refusal names the probes."""
    monkeypatch.setenv("PINNLAB_MEMORY_LIMIT", "1G")
    argv = [
        "run",
        "poisson2d",
        "--set",
        "loss.weighting.scheme=ntk",
        "--set",
        "loss.weighting.ntk_estimator=hutchinson",
        "--set",
        "model.width=2000",
        "--set",
        "training.steps=100",
    ]
    rc = _main([*argv, "--set", f"loss.weighting.ntk_probes={MAX_NTK_PROBES}"])
    out, err = capsys.readouterr()
    check_one_line(rc, out, err, "run", ["loss.weighting.ntk_probes", "NTK probes", "1,024 probes"], 0)


def test_bounds_keep_two_factors_finite_in_float32():
    """The documented reason of SCALE_MAX holds: any product of two factors is a finite float32."""
    import numpy as np

    assert np.isfinite(np.float32(SCALE_MAX) * np.float32(SCALE_MAX))
    cfg = load_config("seed", [f"optimizer.learning_rate={SCALE_MAX!r}", f"regularization.l2={SCALE_MAX!r}"])
    assert cfg.optimizer.learning_rate == SCALE_MAX  # the bound itself is allowed
    assert load_config("convection1d", ["problem.params.beta=1.0e+6"]).problem.params["beta"] == 1e6
    assert load_config("helmholtz2d", ["problem.params.a1=-1.0e+6"]).problem.params["a1"] == -1e6
    assert load_config("seed", ["divergence.loss_floor=-1.0e-9"]).divergence.loss_floor < 0


def test_a_bomb_is_refused_before_it_is_expanded(tmp_path):
    """Measured on the composed graph, so the refusal takes no memory or time (a 9**12 expansion)."""
    from pinnlab.config.sources import load_yaml
    from pinnlab.core.errors import ConfigError

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than"):
        load_yaml(_bomb(12), "bomb")
    assert time.monotonic() - t0 < 1
    assert load_yaml("a: &a [1, 2]\nb: *a\n") == {"a": [1, 2], "b": [1, 2]}  # plain aliases still work


def test_a_fifo_is_not_opened(workdir):
    """Refused from its stat alone: opening a FIFO for reading blocks until a writer comes."""
    from pinnlab.config.sources import read_yaml_file
    from pinnlab.core.errors import ConfigError

    fifo = Path(workdir) / "pipe.yaml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="FIFO"):
        read_yaml_file(fifo)
    assert time.monotonic() - t0 < 1


# ------------------------------------------------------------------------------------------
# Through the installed command: a FIFO or a bomb that slipped through would hang or swap the
# process, which a subprocess with a timeout turns into a failure instead of a stuck suite.

THROUGH_THE_COMMAND = [
    "path-run-fifo",
    "path-sweep-fifo",
    "file-run-bomb.yaml",
    "file-sweep-deep_flow.yaml",
    "file-run-latin1.yaml",
    "overflow-run-decay-steps-1e23",
]


@pytest.mark.parametrize("case", THROUGH_THE_COMMAND)
def test_hostile_input_through_the_command(hostile, case):
    import shutil
    import subprocess
    import sys

    from tests.cli.test_bad_input import TF_NOISE

    _, argv, words = next(c for c in CASES if c[0] == case)
    exe = shutil.which("pinnlab", path=os.path.dirname(sys.executable)) or shutil.which("pinnlab")
    assert exe, "the pinnlab command is not installed"

    def command(argv):
        proc = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=60)
        err = "".join(line + "\n" for line in proc.stderr.splitlines() if not line.startswith(TF_NOISE))
        return proc.returncode, proc.stdout, err

    _expect_one_line(hostile, argv, words, command)
