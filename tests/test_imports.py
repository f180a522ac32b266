"""Import boundaries.

Validating a config or a sweep file must not wait for TensorFlow (7–13 s) or MLflow: each check
runs in a fresh interpreter, does the imports or the validation, and prints which of the heavy
packages ended up in ``sys.modules``.  And, read from the source with ``ast``: only the
``pinnlab.tracking`` package imports mlflow, only ``pinnlab.sweep`` imports optuna.
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
    "import-names-and-problems": "import pinnlab.names, pinnlab.problems",
    "every-preset": (
        "from pinnlab.config import load_config, preset_names\n"
        "for name in preset_names():\n"
        "    load_config(name)"
    ),
    "every-sweep-file": (
        "from pinnlab.sweep.spec import load_sweep\n"
        f"for path in {SWEEPS!r}:\n"
        "    load_sweep(path).for_smoke()"
    ),
    "bad-override": (
        "from pinnlab.config import load_config\n"
        "from pinnlab.errors import ConfigError\n"
        "try:\n"
        "    load_config('seed', ['model.activation=rleu'])\n"
        "except ConfigError:\n"
        "    pass"
    ),
    "import-analysis": "import pinnlab.analysis",
}


def _heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
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
    offenders = [
        _module(p)
        for p in SOURCES
        if package in _imported_roots(p) and not _within(_module(p), owner)
    ]
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
