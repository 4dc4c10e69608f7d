"""`ThreadTimer`: a POSIX timer that sends a signal to one thread, for KVM_RUN's time-out without a
watchdog thread.

A watchdog thread needs the GIL to kick the vCPU, so the thread in KVM_RUN would have to release
it for every exit; on this project's machines that release and re-take costs ~3 us per exit,
as much as the exit itself (bench/kvm_storm.py). A kernel timer needs no GIL:
`timer_create(CLOCK_MONOTONIC)` with `SIGEV_THREAD_ID` (timer_create(2), Linux-specific) delivers
the signal to the thread that runs the vCPU, and KVM_RUN returns EINTR (api.rst §4.10). After its
first expiry the timer repeats every `every` seconds, so a signal that lands while the thread is
in user space between two exits (and so stops no KVM_RUN) is followed by another.

    with ThreadTimer(KICK_SIGNAL) as timer:   # for the calling thread
        timer.arm(5.0, every=0.01)
        ...                                   # KVM_RUN returns EINTR after 5 s
        timer.disarm()

The signal needs a handler (apiclab.backends.kvm.deadline.ensure_kick_handler).
"""

from __future__ import annotations

import ctypes
import os
import threading
from types import TracebackType

CLOCK_MONOTONIC = 1  # include/uapi/linux/time.h
SIGEV_THREAD_ID = 4  # include/uapi/asm-generic/siginfo.h


class _Sigevent(ctypes.Structure):
    """`struct sigevent` (64 bytes on Linux): value, signo, notify, then the union whose first
    member is the target thread's id for SIGEV_THREAD_ID."""

    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int), ("sigev_tid", ctypes.c_int),
                ("_pad", ctypes.c_int * 11)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(None, use_errno=True)
_timer_create = _libc.timer_create
_timer_create.argtypes = [ctypes.c_int, ctypes.POINTER(_Sigevent), ctypes.POINTER(ctypes.c_void_p)]
_timer_settime = _libc.timer_settime
_timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                           ctypes.c_void_p]
_timer_delete = _libc.timer_delete
_timer_delete.argtypes = [ctypes.c_void_p]


def _set(spec: _Timespec, seconds: float) -> None:
    ns = max(0, round(seconds * 1e9))
    spec.tv_sec, spec.tv_nsec = divmod(ns, 1_000_000_000)


class ThreadTimer:
    """A CLOCK_MONOTONIC timer signalling `signo` to the thread that made it; deleted on close."""

    def __init__(self, signo: int) -> None:
        self.thread_id = threading.get_ident()
        event = _Sigevent(sigev_signo=signo, sigev_notify=SIGEV_THREAD_ID,
                          sigev_tid=threading.get_native_id())
        timer = ctypes.c_void_p()
        if _timer_create(CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timer_create: {os.strerror(err)}")
        self._timer: ctypes.c_void_p | None = timer
        self._arm = _Itimerspec()
        self._off = _Itimerspec()
        self._arm_ref = ctypes.byref(self._arm)
        self._off_ref = ctypes.byref(self._off)

    def arm(self, seconds: float, *, every: float) -> None:
        """Signal after `seconds`, then every `every` seconds until `disarm`."""
        _set(self._arm.it_value, seconds)
        _set(self._arm.it_interval, every)
        self._settime(self._arm_ref)

    def disarm(self) -> None:
        self._settime(self._off_ref)

    def _settime(self, spec: object) -> None:
        if self._timer is None:
            raise ValueError("timer is closed")
        if _timer_settime(self._timer, 0, spec, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timer_settime: {os.strerror(err)}")

    def close(self) -> None:
        if self._timer is not None:
            _timer_delete(self._timer)
            self._timer = None

    def __enter__(self) -> ThreadTimer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
