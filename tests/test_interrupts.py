"""SIGINT/SIGTERM as exceptions, and blocks they must not cut in two."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from apiclab import interrupts


@pytest.fixture
def installed() -> Iterator[None]:
    restore = interrupts.install()
    try:
        yield
    finally:
        restore()


def test_sigterm_raises_terminated_with_exit_status_143(installed: None) -> None:
    with pytest.raises(interrupts.Terminated) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes enough for the handler to have run
            pass
    assert interrupts.exit_status(caught.value) == 143
    assert interrupts.exit_status(KeyboardInterrupt()) == 130


def test_a_signal_inside_deferred_is_raised_when_the_block_ends(installed: None) -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecodes enough for the handler to have run
            pass
        finished.append("the block ran to its end")
    assert finished == ["the block ran to its end"]


def test_a_second_signal_does_not_cut_the_clean_up_short(installed: None) -> None:
    cleaned = []
    with pytest.raises(KeyboardInterrupt):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # dropped: already winding down
            for _ in range(1000):
                pass
            cleaned.append(True)
    assert cleaned == [True]
    assert interrupts.interrupted() == signal.SIGINT


def test_without_install_deferred_changes_nothing() -> None:
    with interrupts.deferred():
        pass
    assert signal.getsignal(signal.SIGTERM) is not interrupts._handler
