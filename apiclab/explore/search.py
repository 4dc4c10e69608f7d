"""Stateless search for a run that breaks a property: exhaustive up to a bound, then seeded random.

Every run starts from scratch and is a pure function of its choice sequence (docs/design.md,
"Determinism"), so no executor state is ever copied (as in Hypothesis or CHESS).

- Exhaustive phase: every choice sequence with at most `bound` non-default draws ("deviations",
  like CHESS's preemption bound), simplest first (fewest deviations, then shortest, then
  smallest). A run extends the tree only at draws past its replayed prefix, so each sequence is
  run once. Duplicate-state pruning: when a run reaches a checkpoint whose state was already
  explored with at least as many deviations left, the draws after it are not expanded again.
- Random phase: `random_runs` sequences drawn from seeds derived from `seed`, beyond the bound.
The first violation ends the search; it is then shrunk (`apiclab.explore.shrink`).
The wall-clock `budget` only stops a search early (reported); within it, the same arguments give
the same runs, states and counterexample.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from apiclab.engine.holding import hold, poll, release
from apiclab.engine.trace import Event
from apiclab.explore.choices import RecordingChoices, normalize
from apiclab.explore.families import Family
from apiclab.explore.properties import Property, Violation
from apiclab.explore.shrink import shrink
from apiclab.hypervisor.profiles import Profile

Progress = Callable[[str, int, int], None]  # (phase, runs, distinct states)


@dataclass(frozen=True)
class Run:
    """One executed choice sequence and what the property said about it."""

    choices: list[int]
    violation: Violation | None
    events: list[Event]


@dataclass
class Coverage:
    runs: int = 0
    states: int = 0
    bound: int = 0
    seconds: float = 0.0
    exhaustive_runs: int = 0
    random_runs: int = 0
    exhaustive_complete: bool = False
    budget_exhausted: bool = False


@dataclass
class Counterexample:
    found: Run  # the first failing run, as the search met it
    minimal: Run  # after shrinking
    runs_to_first: int
    seconds_to_first: float
    shrink_runs: int


@dataclass
class SearchResult:
    property: str
    profile: str
    apicv: bool
    family: str
    coverage: Coverage
    counterexample: Counterexample | None = None
    seed: int = 0
    states_seen: set[Hashable] = field(default_factory=set, repr=False)


class Executor:
    """Runs one family under one profile and judges each run with one property."""

    def __init__(self, family: Family, prop: Property, profile: Profile, apicv: bool) -> None:
        self.family, self.prop, self.profile, self.apicv = family, prop, profile, apicv

    def execute(self, choices: RecordingChoices) -> Run:
        trace = self.family.run(self.profile, self.apicv, choices)
        events = trace.events
        return Run(normalize(choices.drawn), self.prop.check(events), events)

    def replay(self, sequence: list[int]) -> tuple[RecordingChoices, Run]:
        choices = RecordingChoices(replay=sequence)
        return choices, self.execute(choices)


def search(
    executor: Executor,
    *,
    bound: int = 3,
    seed: int = 0,
    random_runs: int = 200,
    budget: float = 50.0,
    progress: Progress | None = None,
    prune: bool = True,
) -> SearchResult:
    """Search, shrink the first counterexample, and report coverage. `prune=False` turns off
    duplicate-state pruning (to measure what it saves)."""
    # a SIGINT/SIGTERM is held while the search runs and raised between two runs of the family
    # (apiclab.engine.holding: compiled code cannot take it in the middle of its arithmetic)
    hold()
    try:
        return _search(executor, bound, seed, random_runs, budget, progress, prune)
    finally:
        release()


def _search(executor: Executor, bound: int, seed: int, random_runs: int, budget: float,
            progress: Progress | None, prune: bool) -> SearchResult:
    start = time.perf_counter()
    result = SearchResult(
        executor.prop.name, executor.profile.name, executor.apicv, executor.family.name,
        Coverage(bound=bound), seed=seed,
    )
    cov = result.coverage
    first = _exhaustive(executor, result, start, budget, progress, prune)
    if first is None and not cov.budget_exhausted:
        first = _random(executor, result, start, budget, random_runs, progress)
    if first is not None:
        found_at = time.perf_counter() - start
        runs_to_first = cov.runs
        shrunk = shrink(
            first.choices, lambda seq: _still_fails(executor, seq), deadline=start + budget
        )
        _, minimal = executor.replay(shrunk.choices)
        result.counterexample = Counterexample(first, minimal, runs_to_first, found_at, shrunk.runs)
    cov.states = len(result.states_seen)
    cov.seconds = time.perf_counter() - start
    return result


def _still_fails(executor: Executor, sequence: list[int]) -> list[int] | None:
    poll()
    _, run = executor.replay(sequence)
    return run.choices if run.violation is not None else None


def _exhaustive(
    executor: Executor, result: SearchResult, start: float, budget: float,
    progress: Progress | None, prune: bool,
) -> Run | None:
    cov = result.coverage
    explored: dict[Hashable, int] = {}  # state → most deviations left when it was expanded
    queue: list[tuple[int, int, tuple[int, ...]]] = [(0, 0, ())]
    while queue:
        poll()
        if time.perf_counter() - start > budget:
            cov.budget_exhausted = True
            return None
        used, _, prefix = heapq.heappop(queue)
        choices, run = executor.replay(list(prefix))
        cov.runs += 1
        cov.exhaustive_runs += 1
        if progress is not None and cov.runs % 50 == 0:
            progress("exhaustive", cov.runs, len(result.states_seen))
        if run.violation is not None:
            result.states_seen.update(point.key for point in choices.checkpoints)
            return run
        limit = len(choices.drawn)
        for point in choices.checkpoints:
            result.states_seen.add(point.key)
            if point.index < len(prefix) or not prune:
                continue  # inside a subtree its root run already decided to expand
            left = cov.bound - used
            if explored.get(point.key, -1) >= left:
                limit = point.index  # the rest was explored from this state already
                break
            explored[point.key] = left
        if used >= cov.bound:
            continue
        for j in range(len(prefix), limit):
            for value in range(1, choices.arities[j]):
                child = (*choices.drawn[:j], value)
                heapq.heappush(queue, (used + 1, len(child), child))
    cov.exhaustive_complete = True
    return None


def _random(
    executor: Executor, result: SearchResult, start: float, budget: float, runs: int,
    progress: Progress | None,
) -> Run | None:
    cov = result.coverage
    seeds = random.Random(result.seed)
    for _ in range(runs):
        poll()
        if time.perf_counter() - start > budget:
            cov.budget_exhausted = True
            return None
        choices = RecordingChoices(seed=seeds.getrandbits(64))
        run = executor.execute(choices)
        cov.runs += 1
        cov.random_runs += 1
        result.states_seen.update(point.key for point in choices.checkpoints)
        if progress is not None and cov.runs % 50 == 0:
            progress("random", cov.runs, len(result.states_seen))
        if run.violation is not None:
            return run
    return None
