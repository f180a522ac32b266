"""The bad-input and fault corpus, counted across its tables.

Every table below holds cases that each assert an exit code, one line, no traceback and nothing
written (or a clean stop for the signal cases); this module checks that, together, they stay large
and reach every command, so a table shrinking or a command losing its cases fails here.
"""

from __future__ import annotations

import importlib

import pytest

# (module under tests/, table name) -> how a case names its command
TABLES = {
    ("cli.test_bad_input", "CASES"): lambda case: case[1][0],
    ("sweep.test_journal_faults", "CASES"): lambda case: case[1][0],
    ("dashboards.test_dashboard_injection", "CASES"): lambda case: "dashboard",
    ("dashboards.test_dashboard_injection", "REFUSALS"): lambda case: case[1][0],
    ("sweep.test_store_guards", "CASES"): lambda case: case[1][0],
    ("sweep.test_store_guards", "PG_CASES"): lambda case: case[1][0],
    ("sweep.test_sweep_space_input", "CASES"): lambda case: case[1][0],
    ("cli.test_bad_input_generated", "CASES"): lambda case: case[1][0],
    ("cli.test_signal_faults", "CASES"): lambda case: case[1][0],
}
COMMANDS = {"run", "sweep", "worker", "report", "dashboard", "plots", "reproduce"}


def _tables():
    for (module, name), command in TABLES.items():
        yield module, name, getattr(importlib.import_module(f"tests.{module}"), name), command


def test_the_corpus_has_several_hundred_cases_across_every_command():
    total, commands = 0, set()
    for module, name, table, command in _tables():
        assert table, f"{module}.{name} is empty"
        ids = [case[0] for case in table]
        assert len(set(ids)) == len(ids), f"{module}.{name} repeats an id"
        total += len(table)
        commands |= {command(case) for case in table}
    assert total >= 300, total
    assert COMMANDS <= commands, sorted(COMMANDS - commands)


@pytest.mark.parametrize("module, name", sorted(TABLES))
def test_each_table_is_collected(module, name):
    """Each table feeds a parametrized test of its module (a table no test reads proves nothing)."""
    source = importlib.import_module(f"tests.{module}").__file__
    text = open(source, encoding="utf-8").read()
    assert text.count(name) >= 2, f"{module}.{name} is defined but never used"
