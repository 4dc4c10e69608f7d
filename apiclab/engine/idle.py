"""Skipping the steps that cannot change anything, in runs that count rather than trace.

The rule is determinism: a step of the model is a pure function of the state it reads and its
input, so a step that once left the state as it found it (and scheduled nothing) does so again
from an equal state with the same input. Two uses of it:

- `QuietSteps`, a memo of (state key, input) → "changed nothing but a counter". An interrupt that
  a running guest takes and EOIs (accept, delivery, handler, EOI) ends where it began; once that is
  seen from one state, every later arrival of the same input in an equal state is skipped, only
  the counter of deliveries advancing as it would have. What is not quiet is remembered too, so
  it runs without a second look. The key of the state is taken once and stays current while only
  skipped steps run (`Engine.steps` tells that nothing else ran in between), so a stretch of quiet
  interrupts costs a lookup each.
- `IdleTicks`, for a periodic source ticking into a vector that is already pending and cannot be
  delivered: one state, not a tick every 15.6 ms for three seconds. When one tick schedules
  nothing, runs no guest code and leaves the state as it was, every further tick before the next
  other callback does the same, so the source may re-arm for the first tick at or after that
  callback instead.

Re-arming keeps the order of callbacks due at the same time: the skipped ticks would have
scheduled nothing but each other, so the re-armed tick is, as the original would be, scheduled
after every callback that exists now. A skipped step is exactly one that would have changed
nothing; what it would have *recorded* is lost, so both skip only while the trace is not recording
(`enabled`), and a run that records gives the same events and digest as before. Like every step of
the model, a skipped one must not depend on the clock other than through what it schedules or
stores, and a step must not draw from the run's choices (those draws are the caller's, made before
or after the step whether it is skipped or not): that is what makes "same state" mean "same
result". The state key covers every attribute of every object the machine names as stateful (a
scheduled callback counts by whether it is live, not by its time), so an attribute added later is
covered without a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Final

from apiclab.engine.core import Engine

# The states `QuietSteps` remembers at most. A storm meets a handful (the running guest, the
# shutdown, the boot), but a state holding a time (an APIC timer counting since its start) is new
# every cycle, and ten million cycles must not fill the memory.
MAX_STATES = 4096  # not Final: a test lowers it (read only when a new state is met)

# Checking a tick costs two state snapshots, about what simulating a few ticks costs: try only
# when at least this many ticks could be skipped.
MIN_SKIP: Final = 4


class QuietSteps:
    """A memo of steps that changed nothing: (state key, input) → how far a counter advanced,
    or None for a step that changed something (it runs, unmemoized, the next time too).

    A subclass says what the state and the counter are (`ModelVm`'s: its state key, vCPU 0's
    deliveries): `key()` must cover everything a memoized step can read or write but the counter
    that `count()` reads and `advance(n)` moves on. Methods, not callables handed in: compiled
    (`apiclab.native`), a method of a known class is a direct call, a stored callable a generic
    one — and `advance` runs at every skipped step."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = False
        self._memo: dict[Hashable, dict[Hashable, int | None]] = {}
        self._row: dict[Hashable, int | None] | None = None  # the current state's, if known
        self._current = -1  # the `engine.steps` at which `_row` is still the state's
        self.skipped = 0

    def key(self) -> Hashable:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def advance(self, n: int) -> None:
        raise NotImplementedError

    def run(self, input: Hashable, step: Callable[..., None], *args: Any) -> int:
        """`step(*args)`, unless it is known to change nothing from this state with this input.
        Returns how far the counter moved when the step changed nothing else (0: nothing at
        all), -1 when it changed something (or the memo is off).

        The caller's callback must change nothing before this call, and nothing after it but
        the engine's queue and the run's choices (Traffic draws its next arrival, a periodic
        source re-arms itself): then the state seen at the end of it is the state at the start
        of the next callback."""
        if not self.enabled:
            step(*args)
            return -1
        engine = self.engine
        row = self._row if engine.steps == self._current else None
        if row is not None:
            advanced = row.get(input, -1)
            if advanced is None:  # known to change something: run it; the state moves on
                step(*args)
                self._row = None
                return -1
            if advanced >= 0:
                self.skipped += 1
                if advanced:
                    self.advance(advanced)
                self._current = engine.steps + 1
                return advanced
        before = self.key()
        row = self._memo.get(before)
        if row is None:
            if len(self._memo) >= MAX_STATES:
                self._memo.clear()  # a cache: what is forgotten is verified again, never wrong
            row = self._memo[before] = {}
        known = row.get(input, -1)
        if known is None:  # changed something before: run it, and the state is not known after
            step(*args)
            self._row = None
            return -1
        if known >= 0:
            self.skipped += 1
            if known:
                self.advance(known)
            self._row, self._current = row, engine.steps + 1
            return known
        scheduled, counted = engine.scheduled, self.count()
        step(*args)
        if engine.scheduled == scheduled and self.key() == before:
            known = row[input] = self.count() - counted
            self._row, self._current = row, engine.steps + 1
            return known
        row[input] = None
        self._row = None
        return -1


class IdleTicks:
    def __init__(self, engine: Engine, state: Callable[[], object]) -> None:
        """`state()` returns a value equal before and after a step exactly when the step changed
        nothing; it must cover everything a tick can read or write."""
        self.engine = engine
        self.state = state
        self.enabled = False

    def horizon(self) -> int | None:
        """When the next other callback is due, or just after the end of a `run(until)` in
        progress (its caller may change the state then); ask before the source re-arms itself."""
        if not self.enabled:
            return None
        engine = self.engine
        due = engine.next_time()
        if engine.until is not None:
            due = engine.until + 1 if due is None else min(due, engine.until + 1)
        return due

    def tick(self, fire: Callable[[], int | None], period: int, horizon: int | None, *,
             verdict: bool = False) -> int:
        """Run one tick (`fire`) now, and return how many of the following ticks (`period` apart)
        fall before `horizon` and would have changed nothing; 0 when that is not known. With
        `verdict`, `fire` returns `QuietSteps.run`'s (0: the tick changed nothing and ran no guest
        code), so no snapshot is needed."""
        now = self.engine.now
        if horizon is None or horizon - now <= MIN_SKIP * period:
            fire()
            return 0
        if verdict:
            quiet = fire() == 0
        else:
            before, scheduled = self.state(), self.engine.scheduled
            fire()
            quiet = self.engine.scheduled == scheduled and self.state() == before
        return (horizon - now - 1) // period if quiet else 0  # ticks strictly before the horizon
