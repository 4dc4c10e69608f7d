"""Comparing an observation with a case's expectation, and two observations with each other.

Only guest-visible events count (`apiclab.engine.trace.GUEST_VISIBLE`): each executor records other
events of its own, but the guest can only see these, so only these can agree or differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apiclab.conform.case import Case, ExpectedEvent
from apiclab.engine.events import fields_of
from apiclab.engine.trace import Trace
from apiclab.executors.compare import first_difference

CONTEXT = 2  # observed events shown either side of a divergence


@dataclass(frozen=True)
class Verdict:
    """Whether a run agrees; if not, the first diverging position and what surrounds it."""

    agrees: bool
    index: int = -1
    expected: dict[str, Any] | None = None
    observed: dict[str, Any] | None = None
    context: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "expected": self.expected,
            "observed": self.observed,
            "context": self.context,
            "note": self.note,
        }


def visible(trace: Trace) -> list[dict[str, Any]]:
    """Guest-visible events without their times (times differ between executors by nature)."""
    out = []
    for event in trace.guest_visible():
        out.append({"kind": event.kind, **fields_of(event)})
    return out


def _context(observed: Sequence[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    low, high = max(0, index - CONTEXT), min(len(observed), index + CONTEXT + 1)
    return [dict(observed[i], index=i) for i in range(low, high)]


def match_expectation(case: Case, trace: Trace, *, note: str = "") -> Verdict:
    """First position where the observed events leave the case's expectation, if any."""
    observed = visible(trace)
    for i, row in enumerate(observed):
        if row.get("kind") == "interrupt" and row.get("vector") in case.absent:
            return Verdict(False, i, {"kind": "absent", "vectors": sorted(case.absent)}, row,
                           _context(observed, i), note or "a vector the case says is never "
                           "delivered was delivered")
    expected: tuple[ExpectedEvent, ...] = case.expected_events()
    diff = first_difference(expected, observed, ExpectedEvent.matches)
    if diff is None:
        return Verdict(True, note=note)
    i = diff.index
    if diff.expected is None:
        if expected[-1].kind != "end" and len(observed) == len(expected) + 1 \
                and observed[-1].get("kind") == "end":
            return Verdict(True, note=note)  # a backend may still report the end after a bugcheck
        return Verdict(False, i, None, diff.observed, _context(observed, i),
                       note or "more events than expected")
    if diff.observed is None:
        return Verdict(False, i, diff.expected.as_dict(), None, _context(observed, i),
                       note or "the run ended before this event")
    return Verdict(False, i, diff.expected.as_dict(), diff.observed, _context(observed, i), note)


def first_divergence(left: Sequence[dict[str, Any]], right: Sequence[dict[str, Any]]) -> int:
    """Index of the first event on which two runs' guest-visible rows (`visible`) differ, or -1
    if they agree."""
    diff = first_difference(left, right)
    return -1 if diff is None else diff.index
