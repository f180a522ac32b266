"""Import boundaries.

Validating a config or a sweep file must not wait for TensorFlow (7–13 s) or MLflow: each check
runs in a fresh interpreter, does the imports or the validation, and prints which of the heavy
packages ended up in ``sys.modules``.  And, read from the source with ``ast``: only the
``pinnlab.tracking`` package imports mlflow, only ``pinnlab.sweep`` imports optuna; no two modules
import each other, directly or through others; and each package imports only from the layers
below it (:data:`LAYERS`, the README's "Layout").
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "mlflow")
SWEEPS = sorted(str(p) for p in (ROOT / "sweeps").glob("*.yaml"))

CHECKS = {
    "import-config": "import pinnlab.config",
    "import-sweep-spec": "import pinnlab.sweep.spec",
    "import-names-and-problems": "import pinnlab.core.names, pinnlab.problems",
    "every-preset": (
        "from pinnlab.config import load_config, preset_names\nfor name in preset_names():\n    load_config(name)"
    ),
    "every-sweep-file": (
        f"from pinnlab.sweep.spec import load_sweep\nfor path in {SWEEPS!r}:\n    load_sweep(path).for_smoke()"
    ),
    "bad-override": (
        "from pinnlab.config import load_config\n"
        "from pinnlab.core.errors import ConfigError\n"
        "try:\n"
        "    load_config('seed', ['model.activation=rleu'])\n"
        "except ConfigError:\n"
        "    pass"
    ),
    "import-analysis": "import pinnlab.analysis",
}


def _heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", list(CHECKS.values()), ids=list(CHECKS))
def test_no_heavy_import(code):
    assert _heavy_modules_after(code) == []


def _imports(path: Path) -> set[str]:
    """Every absolute import of a file, at any depth: ``import a.b`` gives ``a.b``; ``from a.b
    import c`` gives ``a.b`` and ``a.b.c`` (``c`` may be a module).  Relative imports are the
    importing package's own modules and are left out."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imports(path)}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


SOURCES = sorted((ROOT / "pinnlab").rglob("*.py"))
OWNERS = {"mlflow": "pinnlab.tracking", "optuna": "pinnlab.sweep"}


@pytest.mark.parametrize("package, owner", OWNERS.items())
def test_only_its_owner_imports(package, owner):
    offenders = [_module(p) for p in SOURCES if package in _imported_roots(p) and not _within(_module(p), owner)]
    assert offenders == [], f"{package} is imported outside {owner}"


@pytest.mark.parametrize("path", sorted((ROOT / "dashboards").glob("*.py")), ids=lambda p: p.name)
def test_dashboard_reads_data_only_through_pinnlab_analysis(path):
    banned = ("mlflow", "optuna", "pinnlab.tracking", "pinnlab.sweep")
    assert [m for m in _imports(path) if any(_within(m, b) for b in banned)] == []


@pytest.mark.parametrize(
    "source, found",
    [
        ("import mlflow", True),
        ("import os, mlflow", True),
        ("import mlflow.tracking as t", True),
        ("from mlflow import MlflowClient", True),
        ("from mlflow.entities import Run", True),
        ("def f():\n    import mlflow", True),
        ("from . import mlflow", False),  # pinnlab's own module of that name, not the package
        ("import mlflow_helpers", False),
        ("x = 'import mlflow'", False),
    ],
)
def test_import_finder(tmp_path, source, found):
    """The finder sees every spelling of an import (the text search it replaced missed ``from``)."""
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    assert ("mlflow" in _imported_roots(path)) is found


_FAKE_STUDY = (
    "import optuna\n"
    "from optuna.storages import JournalStorage\n"
    "from optuna.storages.journal import JournalFileBackend\n"
    "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
    "study = optuna.create_study(study_name='s', storage=JournalStorage(JournalFileBackend({journal!r})))\n"
    "space = {{'model.width': optuna.distributions.CategoricalDistribution([5, 20]),\n"
    "         'optimizer.learning_rate': optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}}\n"
    "for i in range(4):\n"
    "    t = study.ask(space)\n"
    "    t.set_user_attr('outcome', ['stable', 'nan'][i % 2])\n"
    "    t.set_user_attr('steps_run', 10)\n"
    "    study.tell(t, 0.1 * i) if i % 2 == 0 else study.tell(t, state=optuna.trial.TrialState.PRUNED)\n"
)


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_report_and_dashboard_never_import_tensorflow(tmp_path, monkeypatch, command):
    """Reading a study is pandas over Optuna and MLflow: it must not wait for TensorFlow (7-30 s)."""
    monkeypatch.setenv("PINNLAB_HOME", str(tmp_path))
    code = _FAKE_STUDY.format(journal=str(tmp_path / "optuna.journal"))
    code += f"from pinnlab.cli import main\nassert main([{command!r}, 's']) == 0\n"
    assert [m for m in _heavy_modules_after(code) if m in ("tensorflow", "keras")] == []


def test_bad_override_on_the_command_line_exits_2_without_tensorflow():
    """`pinnlab run` validates before it imports TensorFlow: a bad --set fails at once."""
    code = (
        "from pinnlab.cli import main\n"
        "assert main(['run', 'seed', '--set', 'model.activation=rleu', '--no-track']) == 2\n"
    )
    assert _heavy_modules_after(code) == []


def test_training_imports_tensorflow_quietly(tmp_path):
    """The path that trains imports TensorFlow through pinnlab.backend: no absl / CUDA lines."""
    code = (
        "from pinnlab.cli import main\n"
        "assert main(['run', 'seed-fixed', '--set', 'training.steps=2', '--set', 'model.width=4',"
        " '--no-track', '--quiet', '--json']) == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    noise = [line for line in proc.stderr.splitlines() if "absl" in line or "cuda" in line.lower() or "oneDNN" in line]
    assert noise == [], noise


# ------------------------------------------------------------------------- the house in layers
# Lowest first (presets: the shipped YAML files).  The root package only re-exports core's errors and loads the public API lazily.
LAYERS = [
    "presets",
    "core",
    "pinnlab",
    "backend",
    "numerics",
    "problems",
    "config",
    "training",
    "plots",
    "tracking",
    "runs",
    "sweep",
    "reproduce",
    "analysis",
    "dashboards",
    "cli",
    "__main__",
]
# The one way up: a sweep ends by writing its study's report and dashboard (pinnlab.sweep.runner).
UPWARD = {("sweep", "analysis"), ("sweep", "dashboards")}


def _module_files() -> dict[str, Path]:
    """Every module of the installed package by dotted name (dashboards/ is pinnlab.dashboards)."""
    out = {}
    for path in [*SOURCES, *sorted((ROOT / "dashboards").rglob("*.py"))]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[0] == "dashboards":
            parts = ["pinnlab", *parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the pinnlab modules it imports, at any depth of the file (lazy imports count), except
    under ``if TYPE_CHECKING:`` (annotations only).  ``from a import b`` names the module ``a.b`` when
    there is one (a submodule), else ``a``; relative imports are resolved."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join(package + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return "pinnlab" if len(parts) == 1 else parts[1]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph(_module_files())) == []


def test_every_package_imports_only_from_the_layers_below_it():
    modules = _module_files()
    assert {_layer(m) for m in modules} <= set(LAYERS), "a package missing from LAYERS (and the README's Layout)"
    up = [
        f"{a} -> {b}"
        for a, targets in import_graph(modules).items()
        for b in targets
        if LAYERS.index(_layer(b)) > LAYERS.index(_layer(a)) and (_layer(a), _layer(b)) not in UPWARD
    ]
    assert up == []


def test_at_most_ten_modules_directly_under_pinnlab():
    assert len(list((ROOT / "pinnlab").glob("*.py"))) <= 10


def test_the_graph_finds_a_cycle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "pinnlab"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from pinnlab.core import b\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from pinnlab.core.a import x\n")
    (pkg / "core" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pinnlab.core.a\n"
    )
    modules = {f"pinnlab.core.{n}": pkg / "core" / f"{n}.py" for n in "abc"}
    modules["pinnlab.core"] = pkg / "core" / "__init__.py"
    graph = import_graph(modules)
    assert graph["pinnlab.core.a"] == {"pinnlab.core.b"} and graph["pinnlab.core.c"] == set()
    assert cycles(graph) == [["pinnlab.core.a", "pinnlab.core.b"]]


# Imports stay at the top of a module unless they put off loading something heavy: a third-party
# package other than these (TensorFlow, MLflow, Optuna, pandas, matplotlib, ...), or they are the
# CLI's, which installs its signal handling before it imports what a command needs.
LIGHT = {"numpy", "pydantic", "yaml", "__future__"}
DEFERRING = {"pinnlab.cli"}


def _top_level_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> what its top-level statements import (pinnlab modules and third-party roots)."""
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                }
        out[name] = found
    return out


def _heavy(module: str, modules: dict[str, Path], top: dict[str, set[str]], seen: set[str] | None = None) -> set[str]:
    """The heavy third-party packages importing ``module`` loads (its packages' ``__init__`` included)."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    parts = module.split(".")
    heavy = set().union(*(_heavy(".".join(parts[:i]), modules, top, seen) for i in range(1, len(parts))))
    for target in top.get(module, ()):
        root = target.split(".")[0]
        if root == "pinnlab":
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            heavy |= _heavy(target, modules, top, seen)
        elif root not in sys.stdlib_module_names and root not in LIGHT:
            heavy.add(root)
    return heavy


def test_a_pinnlab_import_inside_a_function_puts_off_something_heavy():
    modules = _module_files()
    top = _top_level_imports(modules)
    full = import_graph(modules)
    lazy = []
    for name in modules:
        if name in DEFERRING:
            continue
        own = _heavy(name, modules, top)
        for target in sorted(full[name] - {t for t in top[name] if t in modules}):
            if _heavy(target, modules, top) <= own:
                lazy.append(
                    f"{name} imports {target} inside a function: nothing heavy is put off; import it at the top"
                )
    assert lazy == []


def test_the_tests_mirror_the_packages():
    """tests/<name>/ holds the tests of pinnlab's package or module <name> (``pinnlab.training`` ->
    tests/training/); the project-wide checks (docs, README, imports, benchmarks) stay at the top."""
    folders = {p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").exists()}
    units = {p.name for p in (ROOT / "pinnlab").iterdir() if (p / "__init__.py").exists()}
    units |= {p.stem for p in (ROOT / "pinnlab").glob("*.py")} | {"dashboards"}
    assert len(folders) >= 5 and folders <= units, sorted(folders - units)
    for folder in folders:
        assert list((ROOT / "tests" / folder).glob("test_*.py")), f"tests/{folder}/ holds no test module"
