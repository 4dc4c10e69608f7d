"""A wall-clock time-out for KVM_RUN: a signal to the running thread.

api.rst §4.10: a signal that reaches the thread inside KVM_RUN makes the ioctl return EINTR (also
from a guest blocked in HLT); the signal repeats after the time-out, so one that arrives while
user space handles an exit is not lost.
The signal needs a handler (the default action of SIGUSR1 kills the process); a no-op one is
installed on first use, which Python allows only from the main thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import TracebackType

from apiclab.backends.emulator import stoppable
from apiclab.backends.kvm.thread_timer import ThreadTimer
from apiclab.backends.kvm.vcpu import Vcpu
from apiclab.interrupts import deferred

KICK_SIGNAL = signal.SIGUSR1
KICK_AGAIN_S = 0.01  # after the time-out, the kick repeats until KVM_RUN sees one


def _ignore(signum: int, frame: object) -> None:
    """The kick only has to interrupt the ioctl; nothing to do in Python."""


def ensure_kick_handler() -> None:
    """Install the no-op handler for KICK_SIGNAL unless one is there already."""
    current = signal.getsignal(KICK_SIGNAL)
    if current in (signal.SIG_DFL, None):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                f"KVM run time-out needs a {KICK_SIGNAL.name} handler; install one from the main "
                "thread (apiclab.backends.kvm.deadline.ensure_kick_handler()) before running here"
            )
        signal.signal(KICK_SIGNAL, _ignore)


class RunDeadline:
    """Stops `vcpu` after `seconds` of wall-clock time; `fired` tells whether it did.

        with RunDeadline(vcpu, 2.0) as deadline:
            while not isinstance(vcpu.run(), Interrupted): ...
        deadline.fired

    The time-out is a kernel timer aimed at the thread that made the deadline (thread_timer.py),
    not a timer thread: starting and joining a thread per run cost ~4 ms of a conformance case
    here under load. The signal repeats every `KICK_AGAIN_S` after the time-out, so one that
    lands while user space handles an exit is followed by one that stops KVM_RUN.
    """

    def __init__(self, vcpu: Vcpu, seconds: float) -> None:
        ensure_kick_handler()
        self.vcpu = vcpu
        self.seconds = seconds
        self.fired = False
        self._timer: ThreadTimer | None = None
        self._end = 0.0
        self._thread = 0
        self._stoppable: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        self.interrupted = False  # ended by `interrupt`

    def start(self) -> None:
        self._timer = ThreadTimer(KICK_SIGNAL)
        self._end = time.monotonic() + self.seconds
        self._timer.arm(self.seconds, every=KICK_AGAIN_S)
        # an interruption of the run (SIGINT/SIGTERM: emulator.stop_children) ends it now, as
        # the time-out would, not when the time-out comes (up to a whole batch's time)
        self._thread = threading.get_ident()
        self._stoppable = stoppable(self.interrupt)
        self._stoppable.__enter__()

    def interrupt(self) -> None:
        """End the run now, from another thread: immediate_exit makes a KVM_RUN about to be
        entered return at once, and the signal one that is running (api.rst §4.10)."""
        self.vcpu.set_immediate_exit(True)
        self.interrupted = True
        with contextlib.suppress(ProcessLookupError):
            signal.pthread_kill(self._thread, KICK_SIGNAL)

    def stop(self) -> None:
        """Disarm; `fired` says whether the time-out was reached. Not cut short by
        SIGINT/SIGTERM (apiclab.interrupts.deferred): a timer left armed would go on signalling."""
        with deferred():
            if self._timer is not None:
                timer, self._timer = self._timer, None
                try:
                    timer.disarm()
                finally:
                    timer.close()
                    self._stoppable.__exit__(None, None, None)
                    if self.interrupted:
                        self.vcpu.set_immediate_exit(False)
                self.fired = time.monotonic() >= self._end

    def __enter__(self) -> RunDeadline:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
