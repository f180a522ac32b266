"""``dashboards/`` is installed as ``pinnlab.dashboards`` (see dashboards/__init__.py): the explicit
package list in pyproject.toml covers every package on disk, and the import resolves from the
repository root, where ``./pinnlab`` shadows the installed package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_list_covers_every_pinnlab_package():
    from setuptools import find_packages

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"pinnlab.dashboards": "dashboards"}
    on_disk = set(find_packages(str(ROOT), include=["pinnlab", "pinnlab.*"])) | {"pinnlab.dashboards"}
    assert set(tool["packages"]) == on_disk, "add new pinnlab subpackages to [tool.setuptools] packages"


def test_pinnlab_dashboards_resolves_from_the_repository_root():
    code = (
        "import pinnlab, pinnlab.dashboards.divergence as d, importlib.util as u\n"
        "print(pinnlab.__file__); print(d.__file__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pkg, dash = proc.stdout.split()
    assert Path(pkg) == ROOT / "pinnlab" / "__init__.py"  # the working tree's pinnlab
    assert Path(dash) == ROOT / "dashboards" / "divergence.py"


def test_no_top_level_dashboards_is_installed(tmp_path):
    code = "import importlib.util as u, pinnlab.dashboards; print(u.find_spec('dashboards') is None)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True"
