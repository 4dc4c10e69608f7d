"""Skipping the ticks of a periodic source that cannot change anything.

A clock ticking into a vector that is already pending and cannot be delivered leaves the model as
it found it: one state, not a tick every 15.6 ms for three seconds. The rule is determinism (same
state, same input, same result): when one tick schedules nothing, runs no guest code and leaves
the state as it was, every further tick before the next other callback does the same, so the
source may re-arm for the first tick at or after that callback instead.

Re-arming keeps the order of callbacks due at the same time: the skipped ticks would have
scheduled nothing but each other, so the re-armed tick is, as the original would be, scheduled
after every callback that exists now. The skipped ticks are exactly those that would have changed
nothing; what they would have *recorded* is lost, so a source skips only while the trace is not
recording (`enabled`). Like every step of the model, a tick must not depend on the clock other than
through what it schedules or stores: that is what makes "same state" mean "same result".
"""

from __future__ import annotations

from collections.abc import Callable

from apiclab.engine.core import Engine

# Checking a tick costs two state snapshots, about what simulating a few ticks costs: try only
# when at least this many ticks could be skipped.
MIN_SKIP = 4


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

    def tick(self, fire: Callable[[], None], period: int, horizon: int | None) -> int:
        """Run one tick (`fire`) now, and return how many of the following ticks (`period` apart)
        fall before `horizon` and would have changed nothing; 0 when that is not known."""
        now = self.engine.now
        if horizon is None or horizon - now <= MIN_SKIP * period:
            fire()
            return 0
        before, scheduled = self.state(), self.engine.scheduled
        fire()
        if self.engine.scheduled != scheduled or self.state() != before:
            return 0
        return (horizon - now - 1) // period  # ticks strictly before the horizon
