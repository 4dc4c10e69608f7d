"""SIGINT/SIGTERM as exceptions, and blocks they must not cut in two."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from apiclab import interrupts
from apiclab.engine import holding


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


def test_a_signal_landing_in_the_import_machinery_is_raised_just_after_it(installed: None) -> None:
    """The import system's module-lock callbacks swallow what they raise; a signal that lands in
    them must not be lost (the run would go on and ignore every later signal)."""
    import sys
    import time

    namespace: dict[str, object] = {"sys": sys}
    exec(compile("frame = sys._getframe()", "<frozen importlib._bootstrap>", "exec"), namespace)
    frame = namespace["frame"]
    assert isinstance(frame, FrameType)
    signal_handler = signal.getsignal(signal.SIGTERM)
    assert callable(signal_handler)
    signal_handler(signal.SIGTERM, frame)  # as if it landed there: nothing raised yet
    assert interrupts.interrupted() == signal.SIGTERM
    with pytest.raises(interrupts.Terminated):
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # raised by the retry, well within the deadline
            pass


def test_a_signal_while_held_waits_for_poll_then_raises(installed: None) -> None:
    """What the compiled model needs (`engine.holding`: a multiplication of large ints checks
    for signals in C, and an exception there aborts compiled code): the signal is raised at
    `poll`."""
    reached = []
    holding.hold()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecodes enough for the handler to have run
            pass
        # CPython's SIGCHECK inside the multiplication of large ints runs the handler there
        assert (3**4000) * (7**4000) > 0
        reached.append("held")
        assert interrupts.interrupted() == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            holding.poll()
        reached.append("raised at poll")
    finally:
        holding.release()
    assert reached == ["held", "raised at poll"]


def test_the_outermost_release_raises_a_signal_held_meanwhile(installed: None) -> None:
    with pytest.raises(interrupts.Terminated):
        holding.hold()
        try:
            holding.hold()
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
            finally:
                holding.release()  # inner: still held
            for _ in range(1000):
                pass
        finally:
            holding.release()


def test_a_storm_interrupted_ends_between_two_reboots(installed: None) -> None:
    """The storm polls once a reboot: a SIGINT during it ends it with KeyboardInterrupt."""
    from apiclab.hypervisor.profiles import get_profile
    from apiclab.scenarios.win7_reboot import run_storm

    done: list[int] = []

    def progress(index: int) -> None:
        done.append(index)
        if index == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_storm(get_profile("kvm-3.19"), apicv=True, reboots=50, seed=1, tracing=False,
                  progress=progress)
    assert done[-1] == 3  # the next reboot's poll raised it


def test_without_install_nothing_is_held() -> None:
    holding.hold()
    try:
        assert not holding.holding()
        holding.poll()  # nothing to raise
    finally:
        holding.release()
