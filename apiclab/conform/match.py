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
    for i, want in enumerate(expected):
        if i >= len(observed):
            return Verdict(False, i, want.as_dict(), None, _context(observed, i),
                           note or "the run ended before this event")
        if not want.matches(observed[i]):
            return Verdict(False, i, want.as_dict(), observed[i], _context(observed, i), note)
    if expected[-1].kind != "end" and len(observed) == len(expected) + 1 \
            and observed[-1].get("kind") == "end":
        return Verdict(True, note=note)  # a backend may still report the end after a bugcheck
    if len(observed) > len(expected):
        i = len(expected)
        return Verdict(False, i, None, observed[i], _context(observed, i),
                       note or "more events than expected")
    return Verdict(True, note=note)


def first_divergence(left: Trace, right: Trace) -> int:
    """Index of the first guest-visible event on which two runs differ, or -1 if they agree."""
    a, b = visible(left), visible(right)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return -1 if len(a) == len(b) else min(len(a), len(b))
