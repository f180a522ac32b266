"""What README.md and docs/*.md state is what the code does, so the two cannot drift apart.

* every relative link and every cited repository path exists (links to a heading: the heading too);
* every ``pinnlab ...`` command line of a fenced block parses with the real argument parser, a
  ``pinnlab run PRESET --set ...`` also loads its config, every flag of a synopsis belongs to its
  subcommand, and every ``--flag`` named in prose belongs to pinnlab, a benchmark script or a
  listed outside tool;
* every config key named in backticks (``training.replicates``) exists in the config schema (or
  the sweep-file schema);
* every number the docs state about a default is read from the constant or config default it
  describes (:data:`DEFAULTS`, plus every "`threshold` (value)" of a config field, found by
  :func:`test_every_threshold_in_parentheses_is_the_config_default`);
* every benchmark figure of :data:`MEASURED` is read from ``benchmarks/results/*.json``;
* counts the docs give in words (the sweep files), the Layout list and the test-suite figure.

A row names the doc, a phrase with ``{}`` where the number stands, and how to read the value from
the code; the test finds the phrase (whitespace-insensitive), reads the number the doc gives there,
and compares.  Pure reading: nothing is trained, no store is created.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC_PATHS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = {str(p.relative_to(ROOT)): p.read_text() for p in DOC_PATHS}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def flat(text: str) -> str:
    """The text with every run of whitespace (line breaks included) as one space."""
    return re.sub(r"\s+", " ", text)


def prose(text: str) -> str:
    """The text without its fenced blocks."""
    return FENCE.sub("", text)


def fenced_lines(text: str) -> list[str]:
    return [line for block in FENCE.findall(text) for line in block.splitlines()]


def results(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / name).read_text())


# ---- (a) links and cited paths -------------------------------------------------------------------

# The repository's top-level directories: a token starting with one of them is a path to check.
TOP = ("pinnlab", "tests", "benchmarks", "dashboards", "sweeps", "docs", ".ci")
PATH_TOKEN = re.compile(
    r"(?<![\w/.<$-])((?:\.ci|pinnlab|tests|benchmarks|dashboards|sweeps|docs)/[\w./<>*-]*"
    r"|[\w-]+\.(?:md|py|json|yaml|toml))(?![\w/(])"
)
# Names the docs use for files that are not in the repository on purpose, and why.
NOT_IN_REPO = {
    "config.yaml": "an MLflow artifact of every run",
    "report.md": "an MLflow artifact of a sweep's parent run",
    "dashboard.html": "an MLflow artifact of a sweep's parent run",
    "history.csv": "an MLflow artifact of every run",
    "result.json": "written by `pinnlab reproduce` into its output directory",
    "myheat.py": "the example file docs/problems.md has the user write",
    "heat.yaml": "the example file docs/problems.md has the user write",
}
SKIP_DIRS = {".git", ".venv", "pinnlab-runs", "pinnlab.egg-info", "__pycache__", "node_modules"}


@cache
def repo_files() -> dict[str, list[Path]]:
    """Every file of the checkout (outside virtualenvs and stores), by base name."""
    out: dict[str, list[Path]] = {}
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            out.setdefault(name, []).append(Path(top) / name)
    return out


def cited_paths(name: str) -> list[str]:
    return sorted({m.group(1).rstrip(".") for m in PATH_TOKEN.finditer(DOCS[name])})


def path_exists(doc: str, token: str) -> bool:
    if token in NOT_IN_REPO or token.startswith("pinnlab-runs/"):
        return True
    if any(ch in token for ch in "<*"):  # a pattern such as `tests/test_*.py`: at least one match
        pattern = re.sub(r"<[^>]*>", "*", token)
        return any(ROOT.glob(pattern)) or any((ROOT / doc).parent.glob(pattern))
    if "/" in token:
        return (ROOT / token).exists() or ((ROOT / doc).parent / token).exists()
    return token in repo_files()  # a bare file name (`verdicts.json`, `test_config.py`): somewhere here


@pytest.mark.parametrize("doc", DOCS)
def test_every_cited_path_exists(doc):
    missing = [p for p in cited_paths(doc) if not path_exists(doc, p)]
    assert not missing, f"{doc} cites files that are not in the repository: {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.*)$", prose(path.read_text()), re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    bad = []
    for target in LINK.findall(prose(DOCS[doc])):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (ROOT / doc).parent / file if file else ROOT / doc
        if not path.exists():
            bad.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            bad.append(f"{target} (no such heading)")
    assert not bad, f"{doc}: broken links {bad}"


# ---- (b) commands and flags ----------------------------------------------------------------------

PLACEHOLDERS = {"$STORAGE": "postgresql://u@h:5432/db", "$TRACKING": "http://127.0.0.1:5000"}


def command_lines() -> list[tuple[str, str]]:
    """(doc, argv text) of every `pinnlab ...` line in a fenced block, prompt, comment and
    redirection removed; synopsis lines (with `[--flag]`) are checked apart, and a command shown
    with the error line it prints is a bad-input example (tests/test_readme.py runs it)."""
    out = []
    for doc, text in DOCS.items():
        lines = fenced_lines(text)
        for line, after in zip(lines, [*lines[1:], ""]):
            line = line.strip().removeprefix("$ ")
            line = line.split(" #")[0].split(" > ")[0].strip()
            is_command = re.match(r"pinnlab [a-z]+(?: |$)", line) is not None
            if is_command and "[" not in line and "|" not in line and ": error:" not in after:
                out.append((doc, line))
    return out


@cache
def parser() -> argparse.ArgumentParser:
    from pinnlab.cli import build_parser

    return build_parser()


def subparsers() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def flags_of(p: argparse.ArgumentParser) -> set[str]:
    return {s for a in p._actions for s in a.option_strings}


@pytest.mark.parametrize("doc,line", command_lines(), ids=lambda v: v if len(v) < 60 else v[:60])
def test_every_documented_command_parses(doc, line):
    argv = [PLACEHOLDERS.get(tok, tok) for tok in shlex.split(line)[1:]]
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{line}` does not parse (exit {exc.code})")
    if args.command == "run" and not args.config.endswith((".yaml", ".yml")):
        from pinnlab.config import load_config

        load_config(args.config, args.overrides)  # a preset with its --set overrides: a valid config


def synopses() -> list[tuple[str, str]]:
    return [
        (doc, line.strip().removeprefix("$ "))
        for doc, text in DOCS.items()
        for line in fenced_lines(text)
        if line.strip().removeprefix("$ ").startswith("pinnlab ") and "[" in line
    ]


@pytest.mark.parametrize("doc,line", synopses(), ids=lambda v: v if len(v) < 60 else v[:60])
def test_every_synopsis_flag_belongs_to_its_subcommand(doc, line):
    sub = subparsers()[line.split()[1]]
    named = set(re.findall(r"(--[a-z][\w-]*)", line))
    assert named <= flags_of(sub), f"{doc}: `{line}` names {sorted(named - flags_of(sub))}, not flags of it"
    for flag, choices in re.findall(r"\[(--[\w-]+) ([\w|]+)\]", line):
        if "|" in choices:
            (action,) = [a for a in sub._actions if flag in a.option_strings]
            assert choices.split("|") == list(action.choices), f"{doc}: {flag} {choices} vs {action.choices}"


# Flags of tools that are not pinnlab's, named where the docs show how to run them.
OUTSIDE_FLAGS = {
    "--backend-store-uri": "mlflow ui / mlflow server",
    "--host": "mlflow server",
    "--port": "mlflow server",
    "--artifacts-destination": "mlflow server",
    "--pwprompt": "createuser",
    "--owner": "createdb",
    "--dist": "pytest-xdist",
    "--collect-only": "pytest",
    "--durations": "pytest",
}


@cache
def benchmark_flags() -> set[str]:
    found = set()
    for script in (ROOT / "benchmarks").rglob("*.py"):
        found |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", script.read_text()))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_flag_named_in_the_docs_exists(doc):
    known = set(OUTSIDE_FLAGS) | benchmark_flags()
    for sub in subparsers().values():
        known |= flags_of(sub)
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", DOCS[doc]))
    assert named <= known, f"{doc} names flags nothing has: {sorted(named - known)}"


def benchmark_commands() -> list[tuple[str, str]]:
    out = []
    for doc, text in DOCS.items():
        for m in re.finditer(r"python (benchmarks/(?:\w+/)?\w+\.py)((?: --?[\w-]+(?: [^\s`-][^\s`]*)?)*)", text):
            out.append((doc, m.group(0)))
    return sorted(set(out))


@pytest.mark.parametrize("doc,cmd", benchmark_commands(), ids=lambda v: v if len(v) < 60 else v[:60])
def test_every_benchmark_command_names_a_script_and_its_flags(doc, cmd):
    script = ROOT / cmd.split()[1]
    assert script.is_file(), f"{doc}: `{cmd}`: no such script"
    flags = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", script.read_text()))
    named = set(re.findall(r"(--[\w-]+)", cmd))
    assert named <= flags, f"{doc}: `{cmd}`: {sorted(named - flags)} are not flags of {script.name}"


# ---- (c) config keys -----------------------------------------------------------------------------


def resolve_key(model: Any, parts: list[str]) -> bool:
    """Whether the dotted path exists in a pydantic model (dict fields take any key below them)."""
    from pydantic import BaseModel

    for i, part in enumerate(parts):
        if part in ("*", "…", "...") or part.startswith("<"):
            return True
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        origin = getattr(annotation, "__origin__", None)
        if annotation is dict or origin is dict:
            return True
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        model = models[0] if models else None
        if model is None:
            return i == len(parts) - 1
    return True


KEY = re.compile(r"`([a-z_]+(?:\.(?:[a-z_0-9]+|<[^>`]+>|\*))+)(?<!\.json)(?<!\.yaml)(?<!\.py)(?:[=:][^`]*)?`")


def config_keys() -> list[tuple[str, str]]:
    from pinnlab.config import RunConfig
    from pinnlab.sweep.spec import SweepSpec

    sections = set(RunConfig.model_fields) | set(SweepSpec.model_fields)
    found = set()
    for doc, text in DOCS.items():
        for m in KEY.finditer(text):
            if m.group(1).split(".")[0] in sections:
                found.add((doc, m.group(1)))
    return sorted(found)


@pytest.mark.parametrize("doc,key", config_keys(), ids=lambda v: v)
def test_every_config_key_exists(doc, key):
    from pinnlab.config import RunConfig
    from pinnlab.sweep.spec import SweepSpec

    parts = key.split(".")
    assert resolve_key(RunConfig, parts) or resolve_key(SweepSpec, parts), f"{doc}: `{key}` is no config key"


def test_the_config_keys_scan_sees_the_documented_keys():
    keys = {k for _, k in config_keys()}
    assert {"training.replicates", "divergence.loss_floor", "loss.weighting.ntk_probes"} <= keys


# ---- (d) numbers about defaults, read from the code ----------------------------------------------

NUMBER = r"(?P<v>[−-]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[−-]?\d+)?(?: ?%)?|half|once|twice|two|three|four|five|ten)"
WORDS = {"half": 0.5, "once": 1, "twice": 2, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}


def to_number(text: str) -> float:
    text = text.replace("−", "-").replace(",", "")
    if text in WORDS:
        return WORDS[text]
    if text.endswith("%"):
        return float(text.rstrip("% ")) / 100
    return float(text)


def stated(doc: str, phrase: str) -> list[str]:
    """Every number the doc gives where ``{}`` stands in ``phrase`` (whitespace-insensitive)."""
    before, after = (re.escape(part) for part in phrase.split("{}"))
    return [m.group("v") for m in re.finditer(before + NUMBER + after, flat(DOCS[doc]))]


def sweep_file(name: str) -> dict:
    return yaml.safe_load((ROOT / "sweeps" / name).read_text())


def _config_default(section: str, field: str) -> Any:
    from pinnlab.config import RunConfig

    return getattr(getattr(RunConfig(), section), field)


def _seed_budget() -> int:
    from pinnlab.config import load_config
    from pinnlab.problems.seed import Seed

    t = load_config("seed").training
    return t.epochs * math.ceil(len(Seed.question_grid()) / t.batch_size)


def _eval_points_per_axis() -> int:
    from pinnlab.problems import resolve_problem

    problem = resolve_problem("poisson2d")
    return round(len(problem.eval_points()) ** (1 / len(problem.coords)))


def _mlflow_default(name: str) -> float:
    from pinnlab.cli import MLFLOW_DEFAULTS

    return float(MLFLOW_DEFAULTS[name])


def _metric_every() -> int:
    from pinnlab.tracking.writer import RunTracker

    return inspect.signature(RunTracker.__init__).parameters["metric_every"].default


def _attr(module: str, name: str) -> Callable[[], Any]:
    def read() -> Any:
        return getattr(__import__(module, fromlist=[name]), name)

    read.__name__ = f"{module}.{name}"
    return read


def _smoke(key: str) -> Any:
    from pinnlab.sweep.spec import SmokeSpec

    smoke = SmokeSpec()
    return smoke.n_trials if key == "n_trials" else smoke.overrides[key]


# (doc, phrase with {} where the number stands, the value in the code).  Every row: the phrase is in
# the doc, and the number there equals the code's.
DEFAULTS: list[tuple[str, str, Callable[[], Any]]] = [
    ("README.md", "It runs {} trials in two worker processes", lambda: sweep_file("seed_divergence.yaml")["n_trials"]),
    ("README.md", "creates the study ({} queued trials)", lambda: sweep_file("seed_divergence.yaml")["n_trials"]),
    (
        "docs/scale-out.md",
        "one trial per unit of budget ({} here",
        lambda: sweep_file("seed_divergence.yaml")["n_trials"],
    ),
    (
        "README.md",
        "small network on a {}×60 grid",
        lambda: round(len(__import__("pinnlab.problems.seed", fromlist=["Seed"]).Seed.question_grid()) ** 0.5),
    ),
    ("README.md", "about 1,000 of its {} steps", _seed_budget),
    (
        "README.md",
        "equation coefficients are at most {} (two of them multiply",
        _attr("pinnlab.problems.base", "SCALE_MAX"),
    ),
    ("README.md", "inside a sine at most {},", _attr("pinnlab.problems.base", "MAX_FREQUENCY")),
    ("README.md", "`loss.weighting.ntk_probes` at most {}", _attr("pinnlab.config", "MAX_NTK_PROBES")),
    (
        "README.md",
        "regular UTF-8 files of at most {} MiB",
        lambda: __import__("pinnlab.config.sources", fromlist=["x"]).MAX_FILE_BYTES / 2**20,
    ),
    ("README.md", "at most {} levels deep", _attr("pinnlab.config.sources", "MAX_YAML_DEPTH")),
    (
        "README.md",
        "levels deep and {} values with aliases expanded",
        _attr("pinnlab.config.sources", "MAX_YAML_NODES"),
    ),
    ("README.md", "against {} of the physical memory", _attr("pinnlab.config.resources", "MEMORY_FRACTION")),
    ("README.md", "after {} s (`PINNLAB_STOP_GRACE`)", _attr("pinnlab.core.signals", "STOP_GRACE")),
    (
        "README.md",
        "a server gets {} s to answer, `PINNLAB_PROBE_SECONDS`",
        _attr("pinnlab.tracking.uri", "PROBE_SECONDS"),
    ),
    ("docs/scale-out.md", "within {} s (`PINNLAB_STOP_GRACE`", _attr("pinnlab.core.signals", "STOP_GRACE")),
    ("README.md", "exit code {}, one line, the MLflow run KILLED", _attr("pinnlab.core.signals", "INTERRUPTED")),
    (
        "docs/scale-out.md",
        "A stopped worker exits with code {} and one line",
        _attr("pinnlab.core.signals", "INTERRUPTED"),
    ),
    ("README.md", "MLflow gets every {}th and the last", _metric_every),
    ("README.md", "a tiny variant ({} trials of", lambda: _smoke("n_trials")),
    ("README.md", "trials of {} steps) of any sweep", lambda: _smoke("training.steps")),
    ("README.md", "through its heartbeat within {} s", _attr("pinnlab.sweep.study", "GRACE_PERIOD")),
    ("docs/scale-out.md", "FAIL once its heartbeat is {} s old", _attr("pinnlab.sweep.study", "GRACE_PERIOD")),
    ("docs/scale-out.md", "a trial silent for {} s (the grace period)", _attr("pinnlab.sweep.study", "GRACE_PERIOD")),
    ("docs/scale-out.md", "Heartbeats are sent every {} s", _attr("pinnlab.sweep.study", "HEARTBEAT_INTERVAL")),
    ("docs/scale-out.md", "A trial is queued again at most {}:", _attr("pinnlab.sweep.recovery", "MAX_RETRY")),
    (
        "docs/scale-out.md",
        "a counted FAIL after {} attempts",
        lambda: __import__("pinnlab.sweep.recovery", fromlist=["x"]).MAX_RETRY + 1,
    ),
    ("README.md", "after {} retries and", lambda: _mlflow_default("MLFLOW_HTTP_REQUEST_MAX_RETRIES")),
    (
        "README.md",
        "retries and {} s (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`",
        lambda: _mlflow_default("MLFLOW_HTTP_REQUEST_TIMEOUT"),
    ),
    ("README.md", "`newton_rank` {}, `newton_mu`", lambda: _config_default("optimizer", "newton_rank")),
    ("README.md", "`newton_mu` {},", lambda: _config_default("optimizer", "newton_mu")),
    (
        "README.md",
        "`newton_cg_iters` {}, `newton_precond_every`",
        lambda: _config_default("optimizer", "newton_cg_iters"),
    ),
    ("README.md", "`newton_precond_every` {} by default", lambda: _config_default("optimizer", "newton_precond_every")),
    (
        "README.md",
        "a divergence rate of at least {} over the seeds",
        lambda: _config_default("divergence", "replicate_rate"),
    ),
    (
        "README.md",
        "at least `divergence.replicate_rate` ({}) of",
        lambda: _config_default("divergence", "replicate_rate"),
    ),
    (
        "docs/analysis.md",
        "**divergent when `divergence_rate >= {}`**",
        lambda: _config_default("divergence", "replicate_rate"),
    ),
    ("docs/analysis.md", "or a grid of at most {} values", _attr("pinnlab.analysis.compare", "MAX_LEVELS")),
    (
        "docs/analysis.md",
        "any numeric factor with more than {} distinct values",
        _attr("pinnlab.analysis.compare", "MAX_LEVELS"),
    ),
    ("docs/analysis.md", "are cut into up to {} equal-count bins", _attr("pinnlab.analysis.compare", "BINS")),
    ("docs/analysis.md", "each holding the values of at least {} trials", _attr("pinnlab.analysis.compare", "MIN_BIN")),
    (
        "docs/analysis.md",
        "spanning them all with fewer than {})",
        lambda: 2 * __import__("pinnlab.analysis.compare", fromlist=["x"]).MIN_BIN,
    ),
    ("docs/analysis.md", "the mean U over {} shuffles", _attr("pinnlab.analysis.importance", "N_PERMUTATIONS")),
    (
        "docs/analysis.md",
        "bootstrap interval over the seeds ({} resamples)",
        _attr("pinnlab.analysis.boundary", "N_BOOT"),
    ),
    ("docs/analysis.md", "or `too_few` (under {} seeds)", _attr("pinnlab.analysis.boundary", "MIN_UNITS")),
    (
        "docs/analysis.md",
        "its {} % interval",
        lambda: 100 * __import__("pinnlab.analysis.survival", fromlist=["x"]).CONFIDENCE,
    ),
    (
        "docs/analysis.md",
        "from a random pool of {} configurations",
        _attr("pinnlab.sweep.boundary_sampler", "N_CANDIDATES"),
    ),
    (
        "docs/analysis.md",
        "With more than {} levels the bisection is skipped",
        _attr("pinnlab.sweep.boundary_sampler", "MAX_LEVELS"),
    ),
    ("docs/problems.md", "by default {} points per coordinate", _eval_points_per_axis),
    ("docs/verdicts.md", "(`diagnostics.every`, {})", lambda: _config_default("diagnostics", "every")),
    ("docs/verdicts.md", "on at most {} points per set", lambda: _config_default("diagnostics", "sharpness_points")),
    ("docs/verdicts.md", "`sharpness/ratio` > {} at some check", lambda: _config_default("causes", "step_ratio")),
    ("docs/verdicts.md", "a `deriv/<name>` ≤ {} × the largest", lambda: _config_default("causes", "zero_derivative")),
    ("docs/verdicts.md", "more than {}× apart", lambda: _config_default("causes", "imbalance")),
    ("docs/verdicts.md", "‖∇biases‖/‖∇kernels‖ < {} (measured", lambda: _config_default("causes", "bias_ratio")),
    ("docs/verdicts.md", "held-out / training PDE residual > {} |", lambda: _config_default("causes", "overfit_ratio")),
    (
        "docs/verdicts.md",
        "gradient or weight norm was ≥ 3.4e38 / {} |",
        lambda: _config_default("causes", "overflow_margin"),
    ),
]


@pytest.mark.parametrize("doc,phrase,read", DEFAULTS, ids=[f"{d}:{p[:40]}" for d, p, _ in DEFAULTS])
def test_documented_default_is_the_code_value(doc, phrase, read):
    values = stated(doc, phrase)
    assert values, f"{doc} no longer says {phrase!r}"
    expected = float(read())
    for text in values:
        assert math.isclose(to_number(text), expected, rel_tol=1e-9), (
            f"{doc}: {phrase.format(text)!r}, but the code has {expected:g}"
        )


def _config_fields() -> dict[str, list[tuple[str, Any]]]:
    """Field name -> [(section, default)] over the config sections."""
    from pydantic import BaseModel

    from pinnlab.config import RunConfig

    out: dict[str, list[tuple[str, Any]]] = {}
    cfg = RunConfig()
    for section in RunConfig.model_fields:
        value = getattr(cfg, section)
        if isinstance(value, BaseModel):
            for field in type(value).model_fields:
                out.setdefault(field, []).append((section, getattr(value, field)))
    return out


THRESHOLD = re.compile(r"`(?:(\w+)\.)?(\w+)` \(?" + NUMBER.replace("|half|once|twice|two|three|four|five|ten", ""))


def documented_thresholds() -> list[tuple[str, str, str]]:
    """(doc, `field`, number) wherever a doc writes "`field` (value" or "`field` value" for a
    numeric config field."""
    fields = _config_fields()
    found = set()
    for doc, text in DOCS.items():
        for m in THRESHOLD.finditer(flat(text)):
            section, field = m.group(1), m.group(2)
            matches = [(s, v) for s, v in fields.get(field, []) if section in (None, s)]
            if len(matches) == 1 and isinstance(matches[0][1], (int, float)) and not isinstance(matches[0][1], bool):
                found.add((doc, f"{matches[0][0]}.{field}", m.group("v")))
    return sorted(found)


@pytest.mark.parametrize("doc,key,text", documented_thresholds(), ids=lambda v: v)
def test_every_threshold_in_parentheses_is_the_config_default(doc, key, text):
    section, field = key.split(".")
    expected = _config_default(section, field)
    assert math.isclose(to_number(text), expected, rel_tol=1e-9), f"{doc}: `{field}` ({text}), default {expected}"


def test_the_threshold_scan_sees_the_verdict_table():
    keys = {k for d, k, _ in documented_thresholds() if d == "docs/verdicts.md"}
    assert {
        "divergence.max_weight_ratio",
        "divergence.loss_floor",
        "divergence.alarm_sharpness_initial",
        "diagnostics.sharpness_tol",
        "divergence.trend_min_rate",
    } <= keys


def test_the_boundary_sampler_defaults_are_the_spec_defaults():
    from pinnlab.sweep.spec import SamplerSpec

    (text,) = re.findall(r"`sampler: (\{name: boundary[^`]*\})`", DOCS["docs/analysis.md"])
    documented = yaml.safe_load(text)
    defaults = SamplerSpec(name="boundary").model_dump()
    assert {k: defaults[k] for k in documented} == documented


def test_mlflow_telemetry_setting_is_the_one_documented():
    from pinnlab.cli import MLFLOW_DEFAULTS

    assert f"`MLFLOW_DISABLE_TELEMETRY={MLFLOW_DEFAULTS['MLFLOW_DISABLE_TELEMETRY']}`" in DOCS["README.md"]


def test_stop_grace_variable_is_the_one_documented():
    from pinnlab.core.signals import GRACE_ENV

    for doc in ("README.md", "docs/scale-out.md"):
        assert f"(`{GRACE_ENV}`" in DOCS[doc]


# ---- (e) figures from benchmarks/results/*.json --------------------------------------------------


def _verdicts(key: str, half: str | None = None) -> Any:
    """A figure of the label benchmark: of the whole corpus, or of a half (``tune``, ``held_out``)."""
    data = results("verdicts.json")
    return (data[half] if half else data)[key]


def test_the_verdict_tables_are_the_benchmarks_own():
    """docs/verdicts.md's result tables are ``benchmarks/studies/verdicts.py --markdown`` of the JSON, verbatim."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("verdicts_bench", ROOT / "benchmarks" / "studies" / "verdicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("verdicts.json", "verdicts_fresh.json"):  # the tune/held-out corpus, the fresh draw
        assert module.markdown(results(name)) in DOCS["docs/verdicts.md"], name


def _fresh(key: str) -> Any:
    """A figure of the label benchmark's fresh corpus (``--corpus fresh``)."""
    return results("verdicts_fresh.json")[key]


def _not_diverged() -> int:
    return sum(row["truth_stable"] for row in _verdicts("confusion").values())


def _throughput(name: str, workers: int, key: str) -> float:
    """The median over the benchmark's rounds of ``key`` for ``workers`` workers."""
    return statistics.median(r[key] for r in results(name)["workers"]["runs"] if r["workers"] == workers)


def _trainer(*keys: str) -> float:
    value: Any = results("trainer_overhead.json")
    for key in keys:
        value = value[key]
    return value


def _boundary(sampler: str, key: str) -> float:
    return results("boundary.json")["samplers"][sampler][key]


# (doc, phrase with {}, the figure from the JSON).  The doc's number must be the figure rounded to
# the digits the doc shows.
MEASURED: list[tuple[str, str, Callable[[], float]]] = [
    ("README.md", "({} configurations, each labelled", lambda: _verdicts("n_runs")),
    ("README.md", "On {} configurations drawn afresh", lambda: _fresh("n_runs")),
    ("README.md", "(`--corpus fresh`), the labels agreed on {} %", lambda: 100 * _fresh("label_agreement")),
    ("README.md", "the did-it-train class on {} %, and", lambda: 100 * _fresh("fit_agreement")),
    (
        "README.md",
        "alarms came in time for {} of the",
        lambda: round(_fresh("forecast_recall") * _fresh("n_truth_divergent")),
    ),
    ("README.md", "of the {} divergences, with 3", lambda: _fresh("n_truth_divergent")),
    ("README.md", "with {} false alarms among 48", lambda: len(_fresh("false_alarms"))),
    ("README.md", "false alarms among {} runs: read", lambda: _fresh("n_runs") - _fresh("n_truth_divergent")),
    ("docs/verdicts.md", "`random.Random({})`, made after", lambda: _fresh("fresh_seed")),
    ("docs/verdicts.md", "commit `eac9cb0`, {} s wall", lambda: _fresh("wall_seconds")),
    ("docs/verdicts.md", "Against the goals: label agreement {} (goal", lambda: _fresh("label_agreement")),
    ("docs/verdicts.md", "did-it-train agreement {} (0.9", lambda: _fresh("fit_agreement")),
    ("docs/verdicts.md", "forecast recall {} (0.85", lambda: _fresh("forecast_recall")),
    ("docs/verdicts.md", "false alarms {} (0.03, **not met**)", lambda: _fresh("forecast_false_alarm_rate")),
    ("docs/verdicts.md", "*Labels* ({} disagreements): `helmholtz2d`", lambda: len(_fresh("disagreements"))),
    ("docs/verdicts.md", "*Forecast* ({} misses of 16)", lambda: len(_fresh("missed_forecasts"))),
    ("docs/verdicts.md", "misses of {}): the two", lambda: _fresh("n_truth_divergent")),
    ("docs/verdicts.md", "*Did it train* ({} disagreements of 47)", lambda: len(_fresh("fit_disagreements"))),
    ("docs/verdicts.md", "disagreements of {}): three", lambda: _fresh("n_fit_runs")),
    ("README.md", "labels agree on {} %", lambda: 100 * _verdicts("label_agreement")),
    (
        "README.md",
        "alarms come in time for {} of",
        lambda: round(_verdicts("forecast_recall") * _verdicts("n_truth_divergent")),
    ),
    ("README.md", "of {} divergences", lambda: _verdicts("n_truth_divergent")),
    ("README.md", "with {} false alarms in", lambda: len(_verdicts("false_alarms"))),
    ("README.md", "false alarms in {} runs that did not diverge", _not_diverged),
    ("README.md", "holds at 10 × the budget for {} % of", lambda: 100 * _verdicts("fit_agreement", "held_out")),
    (
        "README.md",
        "`python benchmarks/studies/verdicts.py --workers 2`, about {} minutes",
        lambda: _verdicts("wall_seconds") / 60,
    ),
    ("docs/verdicts.md", "`--workers 2`, {} s wall", lambda: _verdicts("wall_seconds")),
    (
        "docs/verdicts.md",
        "{} of the 90 trials after TPE's",
        lambda: results("constraint.json")["totals"]["constraint"]["divergent_after_startup"],
    ),
    (
        "docs/verdicts.md",
        "with the constraint and {} without",
        lambda: results("constraint.json")["totals"]["no_constraint"]["divergent_after_startup"],
    ),
    ("docs/verdicts.md", "runs each of {} configurations", lambda: _verdicts("n_runs")),
    ("docs/verdicts.md", "label agreement ≥ 0.97: **met** ({})", lambda: _verdicts("label_agreement", "held_out")),
    ("docs/verdicts.md", "did-it-train agreement ≥ 0.9: **met** ({})", lambda: _verdicts("fit_agreement", "held_out")),
    ("docs/verdicts.md", "recall ≥ 0.85: **not met** ({}:", lambda: _verdicts("forecast_recall", "held_out")),
    ("docs/verdicts.md", "≤ 0.03: **not met** ({}:", lambda: _verdicts("forecast_false_alarm_rate", "held_out")),
    ("docs/verdicts.md", "*Recall* ({} of 9 held-out", lambda: len(_verdicts("missed_forecasts", "held_out"))),
    ("docs/verdicts.md", "of {} held-out divergences missed", lambda: _verdicts("n_truth_divergent", "held_out")),
    ("docs/verdicts.md", "*False alarms* ({}):", lambda: len(_verdicts("false_alarms", "held_out"))),
    ("docs/verdicts.md", "*Labels* ({} held-out disagreements)", lambda: len(_verdicts("disagreements", "held_out"))),
    (
        "docs/scale-out.md",
        "two workers ran {}× the trials per minute",
        lambda: results("throughput.json")["workers"]["speedup_2_over_1_steady"],
    ),
    (
        "docs/scale-out.md",
        "of one once running ({} against",
        lambda: _throughput("throughput.json", 2, "trials_per_minute_steady"),
    ),
    (
        "docs/scale-out.md",
        "once running (47 against {})",
        lambda: _throughput("throughput.json", 1, "trials_per_minute_steady"),
    ),
    (
        "docs/scale-out.md",
        "(47 against 21), {}× over the whole command",
        lambda: results("throughput.json")["workers"]["speedup_2_over_1_wall"],
    ),
    (
        "docs/scale-out.md",
        "two worker processes ({} s against",
        lambda: _throughput("throughput.json", 2, "startup_seconds"),
    ),
    ("docs/scale-out.md", "(25 s against {} s)", lambda: _throughput("throughput.json", 1, "startup_seconds")),
    (
        "docs/scale-out.md",
        "whose start-up is {} s longer",
        lambda: (
            _throughput("throughput.json", 2, "startup_seconds") - _throughput("throughput.json", 1, "startup_seconds")
        ),
    ),
    (
        "docs/scale-out.md",
        "the whole-command ratio is {}×",
        lambda: results("throughput-60trials.json")["workers"]["speedup_2_over_1_wall"],
    ),
    (
        "docs/scale-out.md",
        "1.75× ({}× once running)",
        lambda: results("throughput-60trials.json")["workers"]["speedup_2_over_1_steady"],
    ),
    (
        "docs/scale-out.md",
        "storage work costs {} ms per trial on the journal",
        lambda: results("throughput.json")["storage_overhead"]["median_ms_per_trial"]["journal"],
    ),
    (
        "docs/scale-out.md",
        "on the journal and {} ms on PostgreSQL",
        lambda: results("throughput.json")["storage_overhead"]["median_ms_per_trial"]["postgresql"],
    ),
    (
        "docs/scale-out.md",
        "`fsync=off`): {} ms more",
        lambda: results("throughput.json")["storage_overhead"]["postgresql_minus_journal_ms"],
    ),
    (
        "docs/scale-out.md",
        "ms more, {} % of such a trial",
        lambda: (
            results("throughput.json")["storage_overhead"]["postgresql_minus_journal_ms"]
            / 10
            / _throughput("throughput.json", 1, "trial_seconds_median")
        ),
    ),
    (
        "docs/benchmarks.md",
        "| pinnlab `train_step`, median ms/step | {} |",
        lambda: _trainer("steps", "no_jit", "step_ms", "pinnlab", "median"),
    ),
    (
        "docs/benchmarks.md",
        "| pinnlab `train_step`, median ms/step | 28.88 | {} |",
        lambda: _trainer("steps", "jit", "step_ms", "pinnlab", "median"),
    ),
    (
        "docs/benchmarks.md",
        "| hand-written step, median ms/step | {} |",
        lambda: _trainer("steps", "no_jit", "step_ms", "hand", "median"),
    ),
    (
        "docs/benchmarks.md",
        "| hand-written step, median ms/step | 28.02 | {} |",
        lambda: _trainer("steps", "jit", "step_ms", "hand", "median"),
    ),
    (
        "docs/benchmarks.md",
        "| **ratio pinnlab / hand-written (medians)** | **{}** |",
        lambda: _trainer("steps", "no_jit", "ratio_of_medians"),
    ),
    ("docs/benchmarks.md", "(medians)** | **1.031** | **{}** |", lambda: _trainer("steps", "jit", "ratio_of_medians")),
    ("docs/benchmarks.md", "| ratio of 10th percentiles | {} |", lambda: _trainer("steps", "no_jit", "ratio_of_p10")),
    (
        "docs/benchmarks.md",
        "| ratio of 10th percentiles | 1.094 | {} |",
        lambda: _trainer("steps", "jit", "ratio_of_p10"),
    ),
    (
        "docs/benchmarks.md",
        "| ratio of median process-CPU time per step | {} |",
        lambda: _trainer("steps", "no_jit", "ratio_cpu_of_medians"),
    ),
    (
        "docs/benchmarks.md",
        "| ratio of median process-CPU time per step | 0.993 | {} |",
        lambda: _trainer("steps", "jit", "ratio_cpu_of_medians"),
    ),
    (
        "docs/benchmarks.md",
        "| fit(), median over windows | {} |",
        lambda: _trainer("fit", "no_jit", "settings", "every_100", "ms_per_step", "median"),
    ),
    (
        "docs/benchmarks.md",
        "| one diagnostics call, ms | {} |",
        lambda: _trainer("fit", "no_jit", "settings", "every_100", "ms_per_diagnostics_call"),
    ),
    (
        "docs/benchmarks.md",
        "`wall_seconds` against one replicate): **{}×**",
        lambda: results("replicates.json")["done_when"]["ratio_wall_seconds"],
    ),
    (
        "docs/benchmarks.md",
        "costs {} ms against",
        lambda: results("replicates.json")["curve"]["seed-fixed"]["8"]["step_ms"],
    ),
    (
        "docs/benchmarks.md",
        "| stacked-1 | {} |",
        lambda: results("replicates.json")["curve"]["seed-fixed"]["stacked-1"]["cost_ratio"],
    ),
    (
        "docs/benchmarks.md",
        "stacks 8 trials at a time and runs **{}×**",
        lambda: results("batch.json")["sweeps"]["grid"]["8"]["speedup"],
    ),
    (
        "docs/benchmarks.md",
        "so batching gains nothing there ({}×",
        lambda: results("batch.json")["sweeps"]["readme"]["8"]["speedup"],
    ),
    ("docs/analysis.md", "best at equal budget ({} decades", lambda: _boundary("boundary", "error")),
    ("docs/analysis.md", "against the grid's {} at", lambda: _boundary("grid", "error")),
    ("docs/analysis.md", "grid's 0.071 at {} trainings", lambda: _boundary("boundary", "budget")),
    ("docs/analysis.md", "tied with the grid at full budget ({} at", lambda: _boundary("boundary/third", "error")),
    ("docs/analysis.md", "full budget (0.070 at {},", lambda: _boundary("boundary/third", "budget")),
]


def shown_digits(text: str) -> float:
    """Half a unit in the last digit the doc shows: the rounding the figure may carry."""
    plain = text.replace("−", "-").replace(",", "").rstrip("% ")
    if "e" in plain:
        mantissa, exp = plain.split("e")
        decimals = len(mantissa.partition(".")[2])
        return 0.5 * 10 ** (int(exp) - decimals)
    return 0.5 * 10 ** -len(plain.partition(".")[2])


@pytest.mark.parametrize("doc,phrase,read", MEASURED, ids=[f"{d}:{p[:40]}" for d, p, _ in MEASURED])
def test_documented_figure_is_the_benchmark_result(doc, phrase, read):
    values = stated(doc, phrase)
    assert values, f"{doc} no longer says {phrase!r}"
    figure = float(read())
    for text in values:
        number = float(text.replace("−", "-").replace(",", "").rstrip("% "))
        assert abs(number - figure) <= shown_digits(text) + 1e-9, (
            f"{doc}: {phrase.format(text)!r}, but the benchmark's JSON gives {figure:.4g}"
        )


# ---- counts, the Layout list, the test suite -----------------------------------------------------

COUNT_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}


def test_the_number_of_sweep_files_is_the_one_stated():
    (word,) = re.findall(r"see the (\w+) in \[`sweeps/`\]", flat(DOCS["README.md"]))
    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert COUNT_WORDS[word] == len(files), f"README says {word} sweep files; sweeps/ has {[f.name for f in files]}"


def layout() -> list[str]:
    section = DOCS["README.md"].split("## Layout", 1)[1]
    (block,) = FENCE.findall(section)[:1]
    return [line.split()[0] for line in block.splitlines() if line and not line.startswith(" ")]


def test_layout_lists_every_module_once_and_only_what_exists():
    entries = layout()
    assert len(entries) == len(set(entries)), f"listed twice: {sorted({e for e in entries if entries.count(e) > 1})}"
    missing = [e for e in entries if not (ROOT / e).exists()]
    assert not missing, f"the Layout lists what does not exist: {missing}"
    package = ROOT / "pinnlab"
    modules = {f"pinnlab/{p.name}" for p in package.glob("*.py")}
    modules |= {f"pinnlab/{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    block = FENCE.findall(DOCS["README.md"].split("## Layout", 1)[1])[0]
    unlisted = sorted(m for m in modules if m not in entries and m not in block)
    assert not unlisted, f"modules missing from the Layout: {unlisted}"


def test_readme_states_no_stale_test_time():
    """The README points to the dated measurement instead of carrying its own figure."""
    setup = flat(DOCS["README.md"]).split("<!-- ci:test -->")[0].rsplit("## Set-up", 1)[1]
    assert "docs/benchmarks.md#test-suite" in setup
    assert not re.search(r"\d+ (?:tests|s\b|minutes)", setup.split("The second command", 1)[1]), setup
    assert "test-suite" in anchors(ROOT / "docs" / "benchmarks.md")


def _suite_count(session) -> int:
    """The number of tests the suite selects: this session's own when it ran the suite (tests from
    nearly every test module; an xdist worker collects all of them), else a ``--collect-only`` run."""
    files = {Path(str(item.fspath)).name for item in session.items}
    if len(files) >= 0.8 * len(list((ROOT / "tests").rglob("test_*.py"))):
        return len(session.items)
    argv = ["--collect-only", "-q", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    m = re.search(r"(\d+)(?:/\d+)? tests collected", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    return int(m.group(1))


def test_measured_test_count_is_within_a_quarter_of_the_suite(request):
    """docs/benchmarks.md's dated figure is for today's suite, give or take 25 %."""
    (stated_count,) = re.findall(r"(\d[\d,]*) tests selected", flat(DOCS["docs/benchmarks.md"]))
    count, documented = _suite_count(request.session), int(stated_count.replace(",", ""))
    assert abs(count - documented) <= 0.25 * documented, (
        f"docs/benchmarks.md says {documented} tests, the suite has {count}: measure again (see its 'Test suite')"
    )


def test_factor_levels_are_cut_as_docs_analysis_says():
    """docs/analysis.md, "Levels of a factor": a sampled range is binned whatever its number of
    trials (3 bins at 6 trials, one level under 4, 4 bins at most), a grid of few values is not."""
    import pandas as pd

    from pinnlab.analysis.compare import factor_levels

    text = flat(DOCS["docs/analysis.md"])
    assert "(3 bins at 6 trials; one level spanning them all with fewer than 4)" in text
    sampled = {"low": 1e-3, "high": 1e-1, "log": True}

    def levels(values: list[float], space: dict | None) -> int:
        frame = pd.DataFrame({"f": values})
        return len(factor_levels(frame, "f", space).cat.categories)

    assert levels([1e-3 * 2**i for i in range(6)], sampled) == 3
    assert levels([1e-3, 4e-3, 2e-2], sampled) == 1
    assert levels([1e-3 * 1.3**i for i in range(20)], sampled) == 4
    assert levels([1e-3, 1e-2, 1e-1], {"choices": [1e-3, 1e-2, 1e-1]}) == 3


def test_the_documented_test_processes_are_pyprojects():
    import tomllib

    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    (processes,) = re.findall(r"-n (\d+)", addopts)
    assert f"(`-n {processes}` in `pyproject.toml`)" in flat(DOCS["README.md"])
    assert f"(`-n {processes} --dist loadscope`, `pyproject.toml`)" in flat(DOCS["docs/benchmarks.md"])
    assert "--dist loadscope" in addopts
