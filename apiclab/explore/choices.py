"""The choice sequence as the search sees it: every draw's value *and* its arity, plus the
states a scenario reports at its checkpoints.

`apiclab.engine.choices.Choices` records only the values drawn; enumerating the choice tree needs
to know how many values each draw could have taken (its arity), and duplicate-state pruning needs
the scenario to say "from here on, the run depends only on this state and the draws still to
come" at a checkpoint. Both are recorded here, in a subclass, so scenarios keep drawing through
the plain `Choices` interface (Hypothesis style: one recorded sequence, replayed and edited by the
search and the shrinker).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from apiclab.engine.choices import Choices


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A state reported by the scenario before draw number `index`."""

    index: int
    key: Hashable


class RecordingChoices(Choices):
    """`Choices` that also records each draw's arity and the scenario's checkpoints."""

    def __init__(self, seed: int | None = None, replay: Sequence[int] | None = None) -> None:
        super().__init__(seed=seed, replay=replay)
        self.arities: list[int] = []
        self.checkpoints: list[Checkpoint] = []

    def below(self, n: int) -> int:
        self.arities.append(max(n, 1))
        return super().below(n)


def checkpoint(choices: Choices, key: Hashable) -> None:
    """Tell the search that the rest of the run is a function of `key` and of the draws still to
    come. A no-op for plain `Choices` (e.g. `apiclab reproduce` or a direct call)."""
    if isinstance(choices, RecordingChoices):
        choices.checkpoints.append(Checkpoint(len(choices.drawn), key))


def normalize(sequence: Sequence[int]) -> list[int]:
    """The canonical form of a choice sequence: trailing zeros dropped (a replay that runs out
    draws zeros, so they change nothing)."""
    out = list(sequence)
    while out and out[-1] == 0:
        out.pop()
    return out


def deviations(sequence: Sequence[int]) -> int:
    """How many draws differ from the default (zero): the search's bound counts these."""
    return sum(1 for value in sequence if value)
