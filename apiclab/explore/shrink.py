"""Shrinking a failing choice sequence to a minimal one, on the choices (after Hypothesis).

The shrinker never looks at domain objects: it edits the sequence — deletes blocks, zeroes
blocks, lowers values, lowers a count while deleting what it counted — re-runs, and keeps an edit
when the run still fails. Sequences are ordered shortlex (shorter first, then smaller values),
and the families draw so that zero is the simplest choice: fewer draws means fewer pending
vectors and events, smaller values mean earlier times and simpler settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from apiclab.explore.choices import normalize

# Runs the scenario replaying `choices`; returns the sequence it actually drew (normalized) if
# the run still fails, else None.
Test = Callable[[list[int]], list[int] | None]


@dataclass(frozen=True)
class ShrinkResult:
    choices: list[int]
    runs: int


def sort_key(sequence: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """Shortlex: the simpler of two sequences is the shorter, then the smaller."""
    return len(sequence), tuple(sequence)


def shrink(
    sequence: Sequence[int], test: Test, *, max_runs: int = 2_000, deadline: float | None = None
) -> ShrinkResult:
    """The simplest sequence reachable by the passes below that still fails, and the number of
    runs it took. `sequence` must fail. Stops early after `max_runs` runs or at `deadline`
    (a `time.perf_counter()` value), with the simplest failing sequence found so far."""
    state = _Shrinker(normalize(sequence), test, max_runs, deadline)
    changed = True
    while changed and state.runs < max_runs:
        changed = False
        for edit in (_delete_blocks, _zero_blocks, _lower_and_delete, _lower_values):
            changed |= state.apply(edit)
    return ShrinkResult(state.current, state.runs)


class _Shrinker:
    def __init__(
        self, current: list[int], test: Test, max_runs: int, deadline: float | None
    ) -> None:
        self.current = current
        self.test = test
        self.max_runs = max_runs
        self.deadline = deadline
        self.runs = 0
        self.tried: set[tuple[int, ...]] = set()

    def attempt(self, candidate: list[int]) -> bool:
        candidate = normalize(candidate)
        key = tuple(candidate)
        if sort_key(candidate) >= sort_key(self.current) or key in self.tried:
            return False
        if self.runs >= self.max_runs:
            return False
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return False
        self.tried.add(key)
        self.runs += 1
        drawn = self.test(candidate)
        if drawn is None:
            return False
        # A replay reduces each value modulo its draw's arity, so `drawn` is never worse.
        self.current = min(normalize(drawn), candidate, key=sort_key)
        return True

    def apply(self, edit: Callable[[list[int]], Iterator[list[int]]]) -> bool:
        """Try the edit's candidates until one succeeds, then restart it on the new sequence."""
        improved = False
        progress = True
        while progress:
            progress = any(self.attempt(c) for c in edit(self.current))
            improved |= progress
        return improved


def _delete_blocks(seq: list[int]) -> Iterator[list[int]]:
    for size in (8, 4, 2, 1):
        for start in range(len(seq) - size, -1, -1):
            yield seq[:start] + seq[start + size :]


def _zero_blocks(seq: list[int]) -> Iterator[list[int]]:
    for size in (8, 4, 2, 1):
        for start in range(len(seq) - size, -1, -1):
            block = seq[start : start + size]
            if any(block):
                yield seq[:start] + [0] * len(block) + seq[start + size :]


def _lower_and_delete(seq: list[int]) -> Iterator[list[int]]:
    """Lower a count by one and delete what it counted: a block after it (sizes 1-3)."""
    for i, value in enumerate(seq):
        if not value:
            continue
        lowered = [*seq[:i], value - 1]
        rest = seq[i + 1 :]
        for size in (3, 2, 1):
            for start in range(len(rest) - size, -1, -1):
                yield lowered + rest[:start] + rest[start + size :]


def _lower_values(seq: list[int]) -> Iterator[list[int]]:
    """Each value toward zero: halve, then minus one (the loop in `apply` repeats to a minimum)."""
    for i, value in enumerate(seq):
        for smaller in sorted({value // 2, value - 1}):
            if 0 <= smaller < value:
                yield [*seq[:i], smaller, *seq[i + 1:]]
