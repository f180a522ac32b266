"""benchmarks/: speed/ (what things cost) and studies/ (how well pinnlab's judgements hold), one results
schema (commit, date, machine, command) in every file of benchmarks/results/."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").rglob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_every_result_file_carries_commit_date_machine_and_command(path):
    doc = json.loads(path.read_text())
    assert re.fullmatch(r"[0-9a-f]{7,40}", doc.get("commit") or ""), (path.name, doc.get("commit"))
    datetime.fromisoformat(doc["date"])
    assert isinstance(doc["machine"], dict) and {"python", "cpu_count"} <= set(doc["machine"]), doc["machine"]
    script = doc["command"].split()[1]
    assert doc["command"].startswith("python benchmarks/") and (ROOT / script).is_file(), doc["command"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_writes_its_results_through_the_schema(script):
    """A benchmark that writes a results file does so with benchmarks._env.write_results."""
    text = script.read_text()
    assert not re.search(r"write_text\(json\.dumps", text), script.name
    assert "write_results(" in text, script.name


def test_the_header_names_the_running_command(monkeypatch, tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks._env import environment, write_results

    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "speed" / "batch.py"), "--batches", "1", "8"])
    out = tmp_path / "r.json"
    write_results(out, {"figure": 1.5}, environment())
    doc = json.loads(out.read_text())
    assert doc["command"] == "python benchmarks/speed/batch.py --batches 1 8" and doc["figure"] == 1.5
    assert list(doc)[:4] == ["commit", "date", "machine", "command"]


def test_benchmarks_are_split_into_speed_and_studies():
    assert {p.parent.name for p in SCRIPTS} == {"speed", "studies"}
