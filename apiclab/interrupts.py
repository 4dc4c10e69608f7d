"""SIGINT and SIGTERM as exceptions, and short stretches of code they must not cut in two.

The command line calls `install()` once: SIGINT raises KeyboardInterrupt (as Python's own
handler does) and SIGTERM raises `Terminated`, both BaseExceptions, so `except Exception` in a
backend or a property never swallows them and every `with`/`finally` on the way out runs: emulator
children are killed and reaped, tracefs instances removed, temporary directories deleted.

Python runs signal handlers in the main thread between bytecodes, so an exception can land between
two statements that only make sense together — a child started but not yet recorded, a directory
made but not yet owned by anyone who removes it. Such pairs run inside `deferred()`: a signal that
arrives there is raised when the block ends. Only the first signal raises; one that arrives while
the program is already winding down is noted and dropped, so a second Ctrl-C cannot cut the
clean-up short (which is bounded: well under a second).

The compiled model (`apiclab.native`) cannot take an exception just anywhere either (CPython
checks for signals inside multiplications of large ints, and compiled code aborts on an exception
there — seen in the signal tests): while a model run holds (`apiclab.engine.holding`), a signal
is kept like a deferred one and raised at the run's next poll.

Without `install()` (apiclab used as a library) `deferred()` changes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from apiclab.engine import holding

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report it


class Terminated(BaseException):
    """SIGTERM arrived: end the run as Ctrl-C would, with exit status 143."""


class _State:
    installed = False
    raised: signal.Signals | None = None  # the signal already turned into an exception
    pending: signal.Signals | None = None  # a signal that arrived inside deferred()
    depth = 0  # nesting of deferred() in the main thread
    closing = False  # the program is exiting: every signal is dropped


_state = _State()


def _exception(signum: signal.Signals) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _handler(signum: int, frame: FrameType | None) -> None:
    sig = signal.Signals(signum)
    if _state.raised is not None or _state.closing:
        return  # already winding down; the clean-up under way is bounded
    if _state.depth or holding.holding():
        _state.pending = _state.pending or sig
        return
    if _in_import_machinery(frame):
        # An exception raised here can be swallowed: the import system's module-lock weakref
        # callbacks print what they raise and go on ("Exception ignored in ... cb"), and the run
        # would then ignore every later signal. Raise it a moment later, outside.
        _state.pending = _state.pending or sig
        signal.signal(signal.SIGALRM, _retry)
        signal.setitimer(signal.ITIMER_REAL, RETRY_S)
        return
    _state.raised = sig
    raise _exception(sig)


RETRY_S = 0.002


def _in_import_machinery(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


def _retry(signum: int, frame: FrameType | None) -> None:
    """SIGALRM after a signal landed in the import machinery: raise it now (or once more later)."""
    sig, _state.pending = _state.pending, None
    if sig is not None:
        _handler(sig, frame)


def install() -> Callable[[], None]:
    """Install the SIGINT/SIGTERM handlers (main thread only); returns what puts back the old."""
    old = {sig: signal.getsignal(sig) for sig in EXIT_STATUS}
    for sig in EXIT_STATUS:
        signal.signal(sig, _handler)
    _state.installed, _state.raised, _state.pending, _state.depth = True, None, None, 0
    holding.install(_raise_held)
    _state.closing = False

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)
        _state.installed = False
        holding.install(None)

    return restore


def _raise_held() -> None:
    """A model run's safe point (`holding.poll`): raise a signal held until now (not inside a
    `deferred()` block, which raises it when it ends)."""
    if _state.pending is not None and not _state.depth and _state.raised is None:
        sig, _state.pending = _state.pending, None
        _state.raised = sig
        raise _exception(sig)


def ignore_from_now() -> None:
    """The program is ending (its work done, or wound down): a SIGINT/SIGTERM from now on is
    dropped instead of cutting the interpreter's own exit short with a traceback."""
    _state.closing = True


def interrupted() -> signal.Signals | None:
    """The signal that is ending this run, if one is (also while it is deferred)."""
    return _state.raised or _state.pending


def exit_status(error: BaseException) -> int:
    """130 for KeyboardInterrupt, 143 for Terminated (what a shell reports for the signal)."""
    return EXIT_STATUS[signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT]


@contextmanager
def deferred() -> Iterator[None]:
    """Run the block whole: a SIGINT/SIGTERM arriving inside is raised when it ends.

    Only the main thread is affected (the only one Python runs handlers in); in other threads
    this is a no-op, as it is when `install` was not called."""
    if not _state.installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _state.pending is not None and _state.raised is None:
            sig, _state.pending = _state.pending, None
            _state.raised = sig
            raise _exception(sig)

