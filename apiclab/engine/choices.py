"""Every random decision of a run, drawn from one recorded sequence (after Hypothesis).

A run draws integers with `below(n)`; the draws are recorded, so any run can be replayed exactly
from its sequence and shrunk by editing the sequence (smaller numbers are simpler, and a sequence
that runs out yields zeros). Seeded runs and replayed runs go through the same calls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from mypy_extensions import mypyc_attr

T = TypeVar("T")


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed by Python classes
class Choices:
    def __init__(self, seed: int | None = None, replay: Sequence[int] | None = None) -> None:
        self._random = random.Random(seed) if replay is None else None
        self._replay = list(replay) if replay is not None else None
        self.drawn: list[int] = []
        # `Random.randrange(n)` draws as `_uniform` does: n.bit_length() random bits, again until
        # they fall below n (CPython's `_randbelow_with_getrandbits`); the same draws, one call.
        self._bits = self._random.getrandbits if self._random is not None else None

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        if n <= 1:
            value = 0
        elif self._bits is not None:
            value = _uniform(self._bits, n)
        else:
            assert self._replay is not None
            index = len(self.drawn)
            value = self._replay[index] % n if index < len(self._replay) else 0
        self.drawn.append(value)
        return value

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]; shrinks toward `low`."""
        n = high - low + 1
        bits = self._bits
        if bits is None or n <= 1:
            return low + self.below(n)
        k = n.bit_length()  # `_uniform`, inlined: this is the storm's most frequent call
        value = bits(k)
        while value >= n:
            value = bits(k)
        self.drawn.append(value)
        return low + value

    def pick(self, options: Sequence[T]) -> T:
        """One of `options`; shrinks toward the first."""
        return options[self.below(len(options))]


def _uniform(bits: Callable[[int], int], n: int) -> int:
    """A uniform integer in [0, n) for n >= 1, drawn as `random.Random.randrange(n)` draws it."""
    k = n.bit_length()
    value = bits(k)
    while value >= n:
        value = bits(k)
    return value
