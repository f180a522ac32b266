"""pinnlab.signals.Terminate: a signal becomes a KeyboardInterrupt at a safe point, once."""

from __future__ import annotations

import os
import signal

import pytest

from pinnlab.signals import Terminate


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
