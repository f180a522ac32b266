"""pinnlab.core.signals: a signal becomes a KeyboardInterrupt at a safe point, once; the stop watchdog
ends a process that reaches no safe point within the grace, or at once on a second signal."""

from __future__ import annotations

import os
import signal

import pytest

from pinnlab.core.signals import Once, Terminate


def test_outside_a_deferred_block_the_signal_interrupts_at_once():
    term = Terminate()
    with term.installed():
        with pytest.raises(KeyboardInterrupt, match="interrupted by SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert term.received == "SIGTERM"


def test_inside_a_deferred_block_it_waits_for_the_next_check():
    term = Terminate()
    reached = []
    with term.installed(), pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with term.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal")  # not interrupted here
            term.on_step(3, {})  # a trainer callback is a check
            reached.append("never")
    assert reached == ["after the signal"]


def test_the_interrupt_is_raised_when_the_block_ends_without_a_check():
    term = Terminate()
    with term.installed(), pytest.raises(KeyboardInterrupt):
        with term.deferred():
            term(signal.SIGINT, None)
    assert term.received == "SIGINT"


def test_later_signals_are_only_recorded():
    term = Terminate()
    term.deferring = True
    term(signal.SIGTERM, None)
    term(signal.SIGINT, None)  # does not replace the first, does not raise
    assert term.received == "SIGTERM"
    term.reset()
    assert term.received is False
    term.check()  # nothing pending: no interrupt


def test_previous_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    term = Terminate()
    with term.installed((signal.SIGTERM,)):
        assert signal.getsignal(signal.SIGTERM) is term
    assert signal.getsignal(signal.SIGTERM) == before


def test_nested_deferred_blocks_raise_when_the_outermost_one_ends():
    term = Terminate()
    with term.installed(), pytest.raises(KeyboardInterrupt):
        with term.deferred():
            with pytest.raises(KeyboardInterrupt):  # the inner block's end is a check too
                with term.deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
            assert term.deferring  # still inside the outer block: a signal is only recorded
            term(signal.SIGINT, None)
    assert not term.deferring and term.received == "SIGTERM"


def test_once_runs_the_first_action_only():
    once, ran = Once(), []
    assert once(lambda: ran.append("main thread's end"))
    assert not once(lambda: ran.append("watchdog's KILLED"), timeout=0.1)
    assert ran == ["main thread's end"]


# A process that installs the handler, registers an abort action (or none) and then never reaches
# a check: its main thread sleeps, as it would inside one long training step.
WATCHDOG = """
import os, signal, sys, time
from pinnlab.core.signals import Terminate, on_abort
term = Terminate(label="probe")
with term.installed([signal.SIGTERM, signal.SIGINT]), term.deferred():
    with on_abort(lambda: open(sys.argv[1], "w").write("KILLED") and "run KILLED") if sys.argv[1] else open(os.devnull):
        print("ready", flush=True)
        for _ in range(int(sys.argv[2])):
            time.sleep(0.1)  # no check: a step that does not end
        term.check()
"""


def _probe(tmp_path, action: bool, steps: int, signals: int):
    import subprocess
    import sys
    import time

    marker = tmp_path / "aborted"
    env = {**os.environ, "PINNLAB_STOP_GRACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(marker) if action else "", str(steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, time.monotonic() - t0, marker.exists()


def test_the_watchdog_stops_a_process_that_reaches_no_check(tmp_path):
    rc, err, took, aborted = _probe(tmp_path, action=True, steps=600, signals=1)
    assert rc == 130 and aborted and took < 10, (rc, err, took)
    assert err == "probe: interrupted by SIGINT (no safe point within 1 s: stopped at once); run KILLED\n"


def test_a_second_signal_stops_at_once(tmp_path):
    rc, err, took, aborted = _probe(tmp_path, action=True, steps=600, signals=2)
    assert rc == 130 and aborted and took < 1.0 + 0.9, (rc, err, took)  # before the 1 s grace ends
    assert "interrupted by SIGINT (SIGINT again: stopped at once); run KILLED" in err


def test_without_open_work_the_first_signal_waits_for_the_check(tmp_path):
    # nothing to abandon (start-up: a store being created): no exit mid-write, the check comes later
    rc, err, took, aborted = _probe(tmp_path, action=False, steps=25, signals=1)
    assert not aborted and took > 2 and rc == -signal.SIGINT and "KeyboardInterrupt: interrupted by SIGINT" in err, (
        rc,
        err,
    )
