"""Every random decision of a run, drawn from one recorded sequence (after Hypothesis).

A run draws integers with `below(n)`; the draws are recorded, so any run can be replayed exactly
from its sequence and shrunk by editing the sequence (smaller numbers are simpler, and a sequence
that runs out yields zeros). Seeded runs and replayed runs go through the same calls.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Choices:
    def __init__(self, seed: int | None = None, replay: Sequence[int] | None = None) -> None:
        self._random = random.Random(seed) if replay is None else None
        self._replay = list(replay) if replay is not None else None
        self.drawn: list[int] = []

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        if n <= 1:
            value = 0
        elif self._replay is not None:
            index = len(self.drawn)
            value = self._replay[index] % n if index < len(self._replay) else 0
        else:
            assert self._random is not None
            value = self._random.randrange(n)
        self.drawn.append(value)
        return value

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]; shrinks toward `low`."""
        return low + self.below(high - low + 1)

    def pick(self, options: Sequence[T]) -> T:
        """One of `options`; shrinks toward the first."""
        return options[self.below(len(options))]
