"""A tiny deterministic discrete-event core (after SimPy's `core.py`): virtual time in ns, a heap
of scheduled callbacks, and generator processes that yield what they wait for.

It knows nothing of APICs. Ties are broken by scheduling order, so a run is a pure function of
its inputs (docs/design.md, invariant 3).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Final

from apiclab.engine.holding import hold, release

CHECK_EVERY: Final = 4096  # callbacks between two calls of run_process's `keep_going`
# the queue's operations, held where compiled code reads them directly (`apiclab.native`: a
# module attribute is otherwise a look-up in the module's namespace at every call)
_push: Final = heapq.heappush
_pop: Final = heapq.heappop


class Handle:
    """A scheduled callback that can be cancelled before it runs."""

    __slots__ = ("callback", "cancelled", "time")

    def __init__(self, time: int, callback: Callable[[], None]) -> None:
        self.time = time
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Sleep:
    """A process yields this to resume `ns` later. (Requests are made at every step of a process:
    plain classes, since a dataclass's generated `__init__` stays Python when the engine is
    compiled, `apiclab.native`.)"""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns: Final = ns

    def __repr__(self) -> str:
        return f"Sleep({self.ns})"


class Signal:
    """Something a process can wait for; `fire()` wakes every waiter at the current time."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Callable[[], None]] = []

    @property
    def waiting(self) -> int:
        """How many waiters the next `fire()` wakes."""
        return len(self._waiters)

    def fire(self) -> None:
        waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()


class Wait:
    """A process yields this to resume when `signal` fires (sent True) or at `deadline` (False)."""

    __slots__ = ("deadline", "signal")

    def __init__(self, signal: Signal, deadline: int | None = None) -> None:
        self.signal: Final = signal
        self.deadline: Final = deadline

    def __repr__(self) -> str:
        return f"Wait({self.signal!r}, deadline={self.deadline})"


Process = Generator[Sleep | Wait, bool | None, Any]


class Engine:
    """Virtual clock and event queue."""

    def __init__(self) -> None:
        self.now = 0
        self._queue: list[tuple[int, int, Handle]] = []
        self._seq = 0
        self.stopped = False
        self.until: int | None = None  # the bound of the `run(until)` in progress
        # One more for every callback run, and one more again whenever control enters the engine
        # from outside (`run`, `run_process`, `start`, `step`): two callbacks with consecutive
        # counts ran one after the other inside one run, with nothing but engine callbacks between
        # them (what `idle.QuietSteps` needs to know that a state key it took is still current).
        self.steps = 0


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.now, self._queue, list(self._queue), self._seq, self.stopped, self.until,
                self.steps)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        self.now, queue, contents, self._seq, self.stopped, self.until, self.steps = saved
        queue[:] = contents
        self._queue = queue

    def at(self, time: int, callback: Callable[[], None]) -> Handle:
        if time < self.now:
            time = self.now
        handle = Handle(time, callback)
        self._seq += 1
        _push(self._queue, (time, self._seq, handle))
        return handle

    def after(self, delay: int, callback: Callable[[], None]) -> Handle:
        time = self.now + delay if delay > 0 else self.now
        handle = Handle(time, callback)
        self._seq += 1
        _push(self._queue, (time, self._seq, handle))
        return handle

    def stop(self) -> None:
        self.stopped = True

    @property
    def scheduled(self) -> int:
        """How many callbacks have been scheduled so far (a step that schedules nothing leaves it
        unchanged)."""
        return self._seq

    def next_time(self) -> int | None:
        """When the next callback that is still live is due; None when nothing is scheduled."""
        queue = self._queue
        while queue and queue[0][2].cancelled:
            _pop(queue)  # step() would drop it unrun anyway
        return queue[0][0] if queue else None

    def step(self) -> bool:
        """Run the next callback; False when the queue is empty."""
        self.steps += 1  # entered from outside: whatever ran since the last callback is unknown
        return self._step()

    def _step(self) -> bool:
        queue = self._queue
        pop = _pop
        while queue:
            time, _, handle = pop(queue)
            if handle.cancelled:
                continue
            self.now = time
            self.steps += 1
            handle.callback()
            return True
        return False

    def run(self, until: int | None = None) -> None:
        """Run callbacks in time order until the queue empties, `until` passes, or `stop()`."""
        self.stopped = False
        self.until = until
        self.steps += 1
        hold()  # a SIGINT/SIGTERM waits for the end of the run (engine.holding)
        try:
            self._run(until)
        finally:
            self.until = None
            release()

    def _run(self, until: int | None) -> None:
        queue = self._queue
        while queue and not self.stopped:
            time, _, handle = queue[0]
            if until is not None and time > until:
                self.now = until
                return
            _pop(queue)
            if handle.cancelled:
                continue
            self.now = time
            self.steps += 1
            handle.callback()
        if until is not None and not self.stopped and self.now < until:
            self.now = until

    def run_process(
        self,
        process: Process,
        *,
        max_steps: int | None = None,
        keep_going: Callable[[], bool] | None = None,
    ) -> bool:
        """Run `process` to its end, together with everything else scheduled meanwhile.

        Returns False when it was stopped early: after `max_steps` callbacks (a budget that
        keeps a run deterministic), or when `keep_going()`, asked every `CHECK_EVERY` callbacks,
        says no (a caller's wall-clock time-out); True when the process ended or nothing was
        left to run. Either limit bounds a run whose devices fire faster than the process
        advances, such as a periodic timer of 1 ns."""
        hold()  # a SIGINT/SIGTERM waits for the end of the run (engine.holding)
        try:
            return self._run_process(process, max_steps, keep_going)
        finally:
            release()

    def _run_process(self, process: Process, max_steps: int | None,
                     keep_going: Callable[[], bool] | None) -> bool:
        finished: list[bool] = []  # one entry once the process has returned
        self.steps += 1
        self._resume(process, None, finished)
        if max_steps is None and keep_going is None:
            # `_step` inlined: this loop runs every callback of a counting storm, where a method
            # call per step is a measurable share (bench/reboot_cycles.py)
            queue, pop = self._queue, _pop
            while not finished and queue:
                time, _, handle = pop(queue)
                if handle.cancelled:
                    continue
                self.now = time
                self.steps += 1
                handle.callback()
            return True
        steps = 0
        while not finished and self._step():
            steps += 1
            if max_steps is not None and steps >= max_steps:
                return bool(finished)
            if keep_going is not None and steps % CHECK_EVERY == 0 and not keep_going():
                return bool(finished)
        return True

    def start(self, process: Process) -> None:
        """Run a generator process: it yields `Sleep` or `Wait` and is resumed accordingly."""
        self.steps += 1
        self._resume(process, None, None)

    def _resume(self, process: Process, value: bool | None, finished: list[bool] | None) -> None:
        try:
            request = process.send(value)
        except StopIteration:
            if finished is not None:
                finished.append(True)
            return
        if type(request) is Sleep:
            self.after(request.ns, partial(self._resume, process, None, finished))
            return
        assert isinstance(request, Wait)
        done = False
        deadline_handle: Handle | None = None

        def woken() -> None:
            nonlocal done
            if done:
                return
            done = True
            if deadline_handle is not None:
                deadline_handle.cancel()
            self.at(self.now, partial(self._resume, process, True, finished))

        def expired() -> None:
            nonlocal done
            if done:
                return
            done = True
            self._resume(process, False, finished)

        request.signal._waiters.append(woken)
        if request.deadline is not None:
            deadline_handle = self.at(request.deadline, expired)
