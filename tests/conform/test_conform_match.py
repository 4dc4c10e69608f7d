"""Matching an observation against an expectation: the first divergence and what surrounds it."""

from __future__ import annotations

from apiclab.conform.case import Case, Exact, ExpectedEvent, Range
from apiclab.conform.match import first_divergence, match_expectation, visible
from apiclab.engine.trace import Trace
from apiclab.guest.program import Program


def case_of(*expect: ExpectedEvent) -> Case:
    return Case("c", "10.8.3.1", "d", Program(()), tuple(expect))


def trace_of(*events: dict[str, object]) -> Trace:
    return Trace.from_dicts({"time": i, **e} for i, e in enumerate(events))


INT40 = {"kind": "interrupt", "vector": 0x40, "isr": [0x40], "irr": [], "ppr": 0x40}


def test_subset_of_fields_matches_and_times_and_non_guest_events_are_ignored() -> None:
    case = case_of(ExpectedEvent("interrupt", {"vector": Exact(0x40)}),
                   ExpectedEvent("read", {"value": Range(1, 10)}))
    trace = trace_of(INT40, {"kind": "set-lapic", "before": {}}, {"kind": "read", "reg": 0x390, "value": 7},
                     {"kind": "end"})
    assert match_expectation(case, trace).agrees


def test_first_wrong_event_is_reported_with_its_neighbours() -> None:
    case = case_of(ExpectedEvent("interrupt", {"vector": Exact(0x40)}),
                   ExpectedEvent("read", {"value": Exact(0)}))
    trace = trace_of(INT40, {"kind": "read", "reg": 0xA0, "value": 0x40}, {"kind": "end"})
    verdict = match_expectation(case, trace)
    assert not verdict.agrees
    assert verdict.index == 1
    assert verdict.observed == {"kind": "read", "reg": 0xA0, "value": 0x40}
    assert verdict.expected == {"kind": "read", "value": 0}
    assert [e["index"] for e in verdict.context] == [0, 1, 2]


def test_missing_end_and_extra_events_both_differ() -> None:
    case = case_of(ExpectedEvent("interrupt", {"vector": Exact(0x40)}))
    assert match_expectation(case, trace_of(INT40)).note == "the run ended before this event"
    extra = match_expectation(case, trace_of(INT40, INT40, {"kind": "end"}))
    assert not extra.agrees and extra.index == 1


def test_an_end_after_an_expected_bugcheck_is_tolerated() -> None:
    case = case_of(ExpectedEvent("bugcheck", {"code": Exact(0x5C)}))
    assert match_expectation(case, trace_of({"kind": "bugcheck", "code": 0x5C, "params": [0, 0, 0, 0]})).agrees
    assert match_expectation(case, trace_of({"kind": "bugcheck", "code": 0x5C, "params": [0, 0, 0, 0]},
                                            {"kind": "end"})).agrees


def test_first_divergence_between_two_runs() -> None:
    a = visible(trace_of(INT40, {"kind": "end"}))
    assert first_divergence(a, visible(trace_of(INT40, {"kind": "end"}))) == -1
    assert first_divergence(a, visible(trace_of({**INT40, "ppr": 0}, {"kind": "end"}))) == 0
    assert first_divergence(a, visible(trace_of(INT40))) == 1
    # a real backend's time-out is a row of its own (not an event kind) and still compares
    assert first_divergence(a, [*a[:1], {"kind": "timed-out"}]) == 1


def test_an_absent_vector_differs_wherever_it_is_delivered() -> None:
    case = Case("c", "10.8.3.1", "d", Program(()), (ExpectedEvent("end"),),
                absent=frozenset({0x40}))
    assert match_expectation(case, trace_of({"kind": "end"})).agrees
    verdict = match_expectation(case, trace_of(INT40, {"kind": "end"}))
    assert not verdict.agrees and verdict.index == 0
    assert verdict.expected == {"kind": "absent", "vectors": [0x40]}
