"""Stretches of a model run where a SIGINT/SIGTERM must wait for a safe point.

The compiled model (`apiclab.native`) cannot take an exception just anywhere: mypyc assumes that
arithmetic on ints never fails, but CPython checks for signals inside the loops of a
multiplication or division of large ints (`SIGCHECK` in `x_mul`, `x_divrem`), and an exception
raised there makes compiled code abort the process ("fatal: out of memory", SIGABRT). So the
model's long runs are `hold()`/`release()` pairs (the engine's runs, a storm, a search): while
one is open, the program's signal handler (`apiclab.interrupts`, which installs `raise_held`
here) keeps the signal, and it is raised at the next `poll()` — between two reboots, every few
transitions of a search — or at the outermost `release()`, a moment later.

Only the main thread holds (the only one Python runs signal handlers in). Without a handler
installed (apiclab used as a library) nothing is ever held, and these calls change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class _Held:
    depth = 0  # nesting of hold() in the main thread
    # raises the signal held meanwhile, if there is one (`apiclab.interrupts` installs it)
    raise_held: Callable[[], None] | None = None


_held = _Held()
_MAIN_THREAD = threading.main_thread().ident


def holding() -> bool:
    """Whether a signal arriving now must wait (the signal handler asks)."""
    return _held.depth > 0


def install(raise_held: Callable[[], None] | None) -> None:
    """What raises a held signal (None: no handler, nothing is held)."""
    _held.raise_held = raise_held
    _held.depth = 0


def hold() -> None:
    """Compiled model code is about to run: a SIGINT/SIGTERM waits for `poll()` or the
    outermost `release()`."""
    if _held.raise_held is not None and threading.get_ident() == _MAIN_THREAD:
        _held.depth += 1


def release() -> None:
    """The end of a `hold()`: the outermost raises a signal held meanwhile."""
    if _held.depth and threading.get_ident() == _MAIN_THREAD:
        _held.depth -= 1
        if not _held.depth:
            poll()


def poll() -> None:
    """A point where compiled model code may be interrupted: raise a signal held until now."""
    raise_held = _held.raise_held
    if raise_held is not None and threading.get_ident() == _MAIN_THREAD:
        raise_held()
