"""`apiclab explore --exhaustive`: the scenario family as a graph of model states, searched
breadth-first with duplicate detection until no new state remains — an explicit-state model
check (as Spin or TLC do it), with no bound on the number of choices.

A family offers a transition system (`World`): a state's enabled steps, one step, the state's
key, and a snapshot of the live model to come back to. The model's objects (engine, callbacks,
processes) cannot be copied cheaply, so the search runs one live model and expands a state by
restoring its snapshot in place (apiclab.explore.inplace) — the same state the shortest path to it
reached, as the tests check against a replay of that path from the initial state.

Checking: the property is judged on the trace after every transition, before duplicate detection,
so a violation in a history that is then merged into an equal state is not lost; the built-in
properties are prefix-closed (once broken at an event, broken in every extension). Merging equal
keys is sound for a property when its verdict on the rest of a run depends on the past only
through the key: the state keys hold the vCPU state and what `no-delivery-across-reset` reads
(vectors accepted since the reset); times are left out, as at the families' checkpoints.

Breadth-first order makes the first violation found one with the fewest steps: the shortest
counterexample. "No violation" with `complete` set means every reachable state was checked.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apiclab.engine.holding import hold, poll, release
from apiclab.engine.trace import Event, Trace
from apiclab.explore.properties import Property, Violation
from apiclab.hypervisor.profiles import Profile


class World(Protocol):
    """One run of a family as a transition system (see apiclab.explore.scenarios.reboot_steps)."""

    trace: Trace

    def actions(self) -> int: ...

    def step(self, action: int) -> None: ...

    def key(self) -> Hashable: ...

    def allowance(self) -> int: ...

    def history(self) -> Hashable: ...

    def describe(self, action: int) -> str: ...

    def to_choices(self) -> list[int]: ...

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...

    def record_registers(self, on: bool) -> None: ...


WorldFactory = Callable[[Profile, bool], World]
Progress = Callable[[int, int, int], None]  # (states, transitions, depth)
Visit = Callable[[tuple[int, ...], World], None]  # (path, the world just after its last step)

# Built-in properties whose verdict on the rest of a run reads nothing of the past that the state
# key lacks: clock-tick reads the events from the boot's wait-start on (one step); a stale
# delivery is one event, judged on the transition that records it; an in-service vector entered
# the ISR at most a few ms before the state (the stages before the reset are that short, and the
# reset image clears the ISR), far below no-stuck-in-service's 1 s. Every other property (and any
# user's) gets the family's `history()` in the key.
# The snapshots kept for the states still to expand are many small dicts that live until the
# search ends: the cyclic garbage collector's full passes over them cost a third of a proof. So
# every FREEZE_EVERY transitions what is alive is moved out of its reach (gc.freeze); young
# objects are still collected as usual, and everything is handed back (gc.unfreeze) at the end.
FREEZE_EVERY = 2048
# The young generation is collected after this many allocations (Python's default is 700): a
# transition allocates a few dozen objects, nearly all of them snapshots that live on or values
# freed by reference counting, so the default's collections find next to nothing (a proof of the
# seed's family leaves about a hundred cyclic objects) and cost a tenth of the search.
YOUNG_THRESHOLD = 100_000
HISTORY_FREE = frozenset({"clock-tick", "no-stale-delivery", "no-stuck-in-service"})
# Built-in properties that read no event's register snapshot (IRR, ISR, RVI, ...: the `Event`
# fields a vCPU fills in with every event), only kinds, times, vectors and `irr_was_set`. For these
# the search records its events without the snapshots (`World.record_registers(False)`), which
# are a good part of the cost of a step; a counterexample is replayed with them for its
# explanation. `no-stuck-in-service` reads the ISR, and a user's property may read anything.
REGISTER_FREE = frozenset({"clock-tick", "no-stale-delivery", "no-delivery-across-reset"})


@dataclass
class GraphCounterexample:
    path: list[int]
    steps: list[str]  # each step described
    choices: list[int]  # the same run as a choice sequence of the family's `run`
    violation: Violation
    events: list[Event]


@dataclass
class GraphResult:
    property: str
    profile: str
    apicv: bool
    family: str
    states: int = 0  # distinct states explored
    transitions: int = 0  # steps taken (each from an explored state)
    depth: int = 0  # the most non-default choices on a shortest path to a state
    max_steps: int = 0  # the longest shortest path to a state, in steps
    final_states: int = 0  # distinct states at which a run ends
    subsumed: int = 0  # states seen before with at least as many interrupts still allowed
    seconds: float = 0.0
    complete: bool = False  # every reachable state explored
    budget_exhausted: bool = False
    counterexample: GraphCounterexample | None = None


def replay(factory: WorldFactory, profile: Profile, apicv: bool, path: Sequence[int], *,
           registers: bool = True) -> World:
    world = factory(profile, apicv)
    if not registers:
        world.record_registers(False)
    for action in path:
        world.step(action)
    return world


def explore_graph(factory: WorldFactory, prop: Property, profile: Profile, apicv: bool, *,
                  family: str, budget: float = 60.0,
                  progress: Progress | None = None, visit: Visit | None = None) -> GraphResult:
    """Search every state reachable from the family's initial state, fewest non-default choices
    first (a 0-1 breadth-first search: moving on with the default step costs nothing, any other
    choice costs one), so the first violation found has the fewest choices, then the fewest steps.
    """
    freeze = gc.get_freeze_count() == 0  # not if the caller froze objects of its own
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    # a SIGINT/SIGTERM is held while the search runs and raised every 64 transitions
    # (apiclab.engine.holding: compiled code cannot take it in the middle of its arithmetic)
    hold()
    try:
        return _explore(factory, prop, profile, apicv, family=family, budget=budget,
                        progress=progress, visit=visit, freeze=freeze)
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()
        release()


def _explore(factory: WorldFactory, prop: Property, profile: Profile, apicv: bool, *,
             family: str, budget: float, progress: Progress | None, visit: Visit | None,
             freeze: bool) -> GraphResult:
    start = time.perf_counter()
    result = GraphResult(prop.name, profile.name, apicv, family)
    with_history = prop.name not in HISTORY_FREE
    registers = prop.name not in REGISTER_FREE
    check = prop.check

    world = factory(profile, apicv)
    if not registers:
        world.record_registers(False)
    initial = (world.key(), world.history()) if with_history else world.key()
    best: dict[Hashable, int] = {initial: world.allowance()}  # state -> most allowed
    # (cost, path, arity, snapshot): a state is expanded by restoring its snapshot into the one
    # live world and taking each enabled step from there
    queue: deque[tuple[int, tuple[int, ...], int, Any]] = deque(
        [(0, (), world.actions(), world.snapshot())])
    # the counters live in locals while the search runs (this loop is the search's own cost)
    transitions = subsumed = depth = max_steps = final_states = 0
    while queue:
        cost, path, arity, snapshot = queue.popleft()
        if cost > depth:
            depth = cost
        if len(path) > max_steps:
            max_steps = len(path)
        if arity == 0:
            final_states += 1
        for action in range(arity):
            if transitions % 64 == 0:
                poll()
                if time.perf_counter() - start > budget:
                    result.budget_exhausted = True
                    return _done(result, best, start, transitions, subsumed, depth, max_steps,
                                 final_states)
                if freeze and transitions % FREEZE_EVERY == 0:
                    gc.freeze()
            world.restore(snapshot)
            world.step(action)
            transitions += 1
            if visit is not None:
                visit((*path, action), world)
            violation = check(world.trace.events)
            if violation is not None:
                child = (*path, action)
                result.counterexample = _counterexample(factory, prop, profile, apicv, child,
                                                        violation, registers)
                depth = max(depth, cost + (action > 0))
                return _done(result, best, start, transitions, subsumed, depth, max_steps,
                             final_states)
            state = (world.key(), world.history()) if with_history else world.key()
            allowed = world.allowance()
            if best.get(state, -1) >= allowed:
                subsumed += 1
                continue
            best[state] = allowed
            actions = world.actions()
            # a state without steps (a run's end) is counted, never restored
            entry = (cost + (action > 0), (*path, action), actions,
                     world.snapshot() if actions else None)
            if action == 0:
                queue.appendleft(entry)
            else:
                queue.append(entry)
        if progress is not None and transitions % 256 < arity:
            progress(len(best), transitions, depth)
    result.complete = True
    return _done(result, best, start, transitions, subsumed, depth, max_steps, final_states)


def _done(result: GraphResult, best: dict[Hashable, int], start: float, transitions: int,
          subsumed: int, depth: int, max_steps: int, final_states: int) -> GraphResult:
    result.states = len(best)
    result.transitions, result.subsumed, result.depth = transitions, subsumed, depth
    result.max_steps, result.final_states = max_steps, final_states
    result.seconds = time.perf_counter() - start
    return result


def _counterexample(factory: WorldFactory, prop: Property, profile: Profile, apicv: bool,
                    path: tuple[int, ...], violation: Violation,
                    registers: bool) -> GraphCounterexample:
    """The counterexample as the search found it, its events recorded with their register
    snapshots: the path is replayed from the initial state in a new world (each step described
    on the way), with the snapshots on even when the search left them out."""
    steps = []
    walker = factory(profile, apicv)
    for action in path:
        steps.append(walker.describe(action))
        walker.step(action)
    events = list(walker.trace.events)
    if not registers:
        # the property reads none of the snapshots: it breaks at the same event, and the
        # sentence it gives is read off the replayed events, as the explanation is
        replayed = prop.check(events)
        if replayed is None or replayed.index != violation.index:
            raise RuntimeError(f"path {list(path)}: the replay with register snapshots judges "
                               f"{replayed}, the search judged {violation}")
        violation = replayed
    return GraphCounterexample(list(path), steps, walker.to_choices(), violation, events)
