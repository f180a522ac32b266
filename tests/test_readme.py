"""Every command in the README works as written.

Shell commands are taken from the README's ```bash blocks and run with the test's Python
environment first on PATH, in a scratch directory; the Python block is executed; the documented
error line is compared with the real one.  The test command itself (the ``ci:test`` block) is what
runs this file and is not run again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[tuple[str, str]]:
    """(marker before the block or "", block text) for each fenced block of ``lang``."""
    out = []
    for m in re.finditer(r"(<!-- (ci:\w+) -->\s*)?```" + lang + r"\n(.*?)```", README, re.S):
        out.append((m.group(2) or "", m.group(3)))
    return out


def shell_commands() -> list[str]:
    cmds = []
    for marker, text in blocks("bash"):
        if marker == "ci:test":
            continue
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def env_with_venv() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_readme_has_the_two_setup_commands():
    markers = [m for m, _ in blocks("bash")]
    assert markers.count("ci:setup") == 1 and markers.count("ci:test") == 1


@pytest.mark.parametrize("cmd", shell_commands())
def test_shell_command_works_as_written(cmd, tmp_path):
    if cmd.startswith("pip install -e"):
        # run from the repository root, as the README says (a clone of this repository)
        cwd = ROOT
    else:
        cwd = tmp_path
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env_with_venv(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd!r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    if "pinnlab run seed" in cmd and cmd.endswith("pinnlab run seed"):
        assert "blowup" in proc.stdout  # what the README says the main job shows


def test_python_block_runs():
    (code,) = [text for _, text in blocks("python")]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].steps_run > 0


def test_documented_error_line_is_the_real_one():
    (text,) = [t for _, t in blocks("text") if t.startswith("$ pinnlab")]
    lines = text.strip().splitlines()
    cmd = lines[0][2:]
    proc = subprocess.run(cmd, shell=True, env=env_with_venv(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == lines[1]
