"""Delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
TSE 2002): the smallest sublist of a failing input that still fails, 1-minimal (removing any one
item makes it pass). Each distinct sublist is tested at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """A 1-minimal sublist of `items` (order kept) on which `fails` still holds.

    `fails(list(items))` is assumed true; `fails` is called on sublists only.
    """
    cache: dict[tuple[int, ...], bool] = {}
    index = list(range(len(items)))

    def test(subset: list[int]) -> bool:
        key = tuple(subset)
        if key not in cache:
            cache[key] = fails([items[i] for i in subset])
        return cache[key]

    n = 2
    while len(index) >= 2:
        chunk = -(-len(index) // n)
        parts = [index[i:i + chunk] for i in range(0, len(index), chunk)]
        for part in parts:
            if test(part):
                index, n = part, 2
                break
        else:
            for part in parts:
                complement = [i for i in index if i not in part]
                if complement and test(complement):
                    index, n = complement, max(n - 1, 2)
                    break
            else:
                if n >= len(index):
                    break
                n = min(len(index), 2 * n)
    if len(index) == 1 and test([]):
        index = []
    return [items[i] for i in index]
