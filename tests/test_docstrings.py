"""The code's prose says what the code does and why; history belongs to the version log and docs/.

No commit hashes, issue numbers or "was tried" notes in the modules, benchmarks and tests
(alternatives measured and not used are kept in docs/design.md)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("pinnlab", "dashboards", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py"))
HISTORY = [
    ("an issue number", re.compile(r"\bissues? #?\d+", re.I)),
    ("a commit hash", re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")),
    ("a 'tried' note", re.compile(r"\b(was|were|also|first) tried\b|\btried (first|and not used)\b", re.I)),
    ("'once' as history", re.compile(r"\b(was|were) once\b|\bit once\b|\bused to (pass|be|take)\b", re.I)),
]


def prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a module."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                first = node.body[0].lineno
                out += [(first + i, line) for i, line in enumerate(doc.splitlines())]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    return out


def test_no_history_in_the_code():
    found = []
    for path in FILES:
        if path.name == Path(__file__).name:
            continue
        for number, line in prose(path.read_text()):
            for what, pattern in HISTORY:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_the_check_reads_docstrings_and_comments_only():
    source = 'X = "b50ad1a"  # fine\n\n\ndef f():\n    """Measured at b50ad1a."""\n    # issue 12\n'
    hits = [(n, what) for n, line in prose(source) for what, p in HISTORY if p.search(line)]
    assert hits == [(5, "a commit hash"), (6, "an issue number")]
