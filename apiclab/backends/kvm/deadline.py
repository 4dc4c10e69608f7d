"""A wall-clock time-out for KVM_RUN: `immediate_exit` plus a signal to the running thread.

api.rst §5 (kvm_run.immediate_exit) and §4.10: a signal that reaches the thread inside KVM_RUN makes
the ioctl return EINTR (also from a guest blocked in HLT); `immediate_exit = 1` makes any later
KVM_RUN return EINTR at once, so a time-out that fires while user space handles an exit is not lost.
The signal needs a handler (the default action of SIGUSR1 kills the process); a no-op one is
installed on first use, which Python allows only from the main thread.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType

from apiclab.backends.kvm.vcpu import Vcpu
from apiclab.interrupts import deferred

KICK_SIGNAL = signal.SIGUSR1


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
    """

    def __init__(self, vcpu: Vcpu, seconds: float) -> None:
        ensure_kick_handler()
        self.vcpu = vcpu
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._armed = False
        self._thread_id = threading.get_ident()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:  # never touch the kvm_run page after `stop` (it may be unmapped)
            if not self._armed:
                return
            self.fired = True
            self.vcpu.set_immediate_exit(True)
            signal.pthread_kill(self._thread_id, KICK_SIGNAL)

    def start(self) -> None:
        self._armed = True
        self._timer.start()

    def stop(self) -> None:
        """Disarm; if the time-out fired, clear immediate_exit so the vCPU can run again.

        Not cut short by SIGINT/SIGTERM (apiclab.interrupts.deferred): a timer left armed would
        later write to the kvm_run page of a vCPU that is gone."""
        with deferred():
            with self._lock:
                self._armed = False
                if self.fired and self.vcpu.fd >= 0:
                    self.vcpu.set_immediate_exit(False)
            self._timer.cancel()
            self._timer.join()

    def __enter__(self) -> RunDeadline:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
