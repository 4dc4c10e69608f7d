"""The one comparison: where an observation first leaves what was expected.

Every command that compares runs goes through `first_difference`: a conformance case's expected
events against a run (`conform.match`), the model's run against a real backend's
(`conform.differential`), a host KVM run against the model's (`backends.kvm.deviation`), and
Bochs' VMX outcome against the model's (`cli.vmx_cmd`). What "agree" means per position is the
caller's `matches` (equality by default; a case's field matchers for expectations); where the two
sequences part, and how a shorter one is told apart from a differing one, is decided here once.

This module imports nothing of apiclab: any layer may compare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Difference(Generic[T, U]):
    """The first position where the two sequences part: the expected item there and the observed
    one (None where that sequence had already ended)."""

    index: int
    expected: T | None
    observed: U | None


def _equal(expected: Any, observed: Any) -> bool:
    return bool(expected == observed)


def differences(
    expected: Sequence[T],
    observed: Sequence[U],
    matches: Callable[[T, U], bool] = _equal,
) -> Iterator[Difference[T, U]]:
    """Every position where `observed` does not match `expected`, in order; past the end of
    the shorter sequence, each remaining item of the longer one is a difference."""
    for i in range(max(len(expected), len(observed))):
        if i >= len(expected) or i >= len(observed):
            yield Difference(i, expected[i] if i < len(expected) else None,
                             observed[i] if i < len(observed) else None)
        elif not matches(expected[i], observed[i]):
            yield Difference(i, expected[i], observed[i])


def first_difference(
    expected: Sequence[T],
    observed: Sequence[U],
    matches: Callable[[T, U], bool] = _equal,
) -> Difference[T, U] | None:
    """The first position where `observed` leaves `expected` (None when they agree throughout,
    same length included)."""
    return next(differences(expected, observed, matches), None)
