"""The machine a benchmark ran on, and the header every file in benchmarks/results/ starts with.

Every result file carries ``commit``, ``date``, ``machine`` and ``command`` at its top level
(:func:`write_results`; tests/test_benchmarks.py checks the files), beside the benchmark's own
``environment`` block (load averages, library versions) where it keeps one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def environment(**extra) -> dict:
    """Date, Python, platform, CPU model and count, git commit and load average, plus ``extra``."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **extra,
    }


MACHINE_KEYS = ("cpu_model", "cpu_count", "platform", "python")


def command() -> str:
    """The command that is running, as typed from the repository's root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def header(env: dict | None = None) -> dict:
    """``commit``, ``date``, ``machine`` and ``command`` from an :func:`environment` block."""
    env = env or environment()
    return {
        "commit": env.get("git_commit") or None,
        "date": env.get("date_utc"),
        "machine": {k: env[k] for k in MACHINE_KEYS if k in env},
        "command": command(),
    }


def write_results(path: str | Path, payload: dict, env: dict | None = None, indent: int = 2) -> None:
    """Write ``payload`` as JSON to ``path`` after the :func:`header` (a payload's own ``machine``
    block, a superset, is kept)."""
    doc = {**header(env), **payload}
    Path(path).write_text(json.dumps(doc, indent=indent) + "\n")
