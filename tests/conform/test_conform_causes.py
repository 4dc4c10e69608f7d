"""Differences grouped by root cause, and the HTML report that shows them with timelines."""

from dataclasses import replace

from apiclab.backends.base import Availability
from apiclab.conform.backends import make_backend
from apiclab.conform.case import load_builtin
from apiclab.conform.causes import EOI_AT_INJECTION, NOT_TAKEN, group_differences
from apiclab.conform.match import match_expectation, visible
from apiclab.conform.report import differences_text, to_html
from apiclab.conform.runner import BackendRun, CaseResult, SuiteResult, judge
from apiclab.engine.events import KINDS
from apiclab.engine.trace import Trace

EVIL = "<script>alert(1)</script>"


def _case(name):
    return next(c for c in load_builtin() if c.name == name)


def _run(case, rows):
    trace = Trace()
    for i, (kind, data) in enumerate(rows):
        trace.record(i * 1000, KINDS[kind], **data)
    verdict = match_expectation(case, trace)
    outcome = "agrees" if verdict.agrees else "differs"
    return BackendRun(outcome, verdict, events=visible(trace), trace=trace.events)


def _suite():
    eoi_case = replace(_case("eoi-empty-isr"), name=EVIL)
    eoi_at_injection = _run(eoi_case, [
        ("read", {"reg": 0xA0, "value": 0}), ("read", {"reg": 0x120, "value": 0}),
        ("interrupt", {"vector": 0x40, "isr": [], "irr": [], "ppr": 0}),
        ("read", {"reg": 0xA0, "value": 0}), ("end", {}),
    ])
    late = _run(_case("eoi-empty-isr"), [
        ("read", {"reg": 0xA0, "value": 0}), ("read", {"reg": 0x120, "value": 0}),
        ("read", {"reg": 0xA0, "value": 0}), ("end", {}),
    ])
    model = make_backend("model")
    cases = [
        CaseResult(eoi_case, {"model": judge(eoi_case, model), "fake": eoi_at_injection}),
        CaseResult(_case("eoi-empty-isr"), {"model": judge(_case("eoi-empty-isr"), model),
                                            "fake": late}),
    ]
    backends = {"model": Availability(True, "model"), "fake": Availability(True, "fake 1.0")}
    return SuiteResult(backends, cases)


def test_each_difference_is_put_under_the_cause_its_events_show():
    groups = group_differences(_suite())
    assert [(g.backend, g.key, len(g.members)) for g in groups] == [
        ("fake", EOI_AT_INJECTION, 1), ("fake", NOT_TAKEN, 1)
    ]


def test_the_terminal_shows_the_causes_before_the_details():
    text = differences_text(_suite())
    assert text.startswith("by cause:\nfake: 2 differences, 2 causes")
    assert text.index("EOI'd as it was injected") < text.index("first difference at event")


def test_the_report_counts_groups_and_draws_each_difference_escaped():
    page = to_html(_suite())
    assert page.count("<script") == 2 and EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Differences by cause" in page and "Registers read back" in page
    assert "<th>fake</th><td class='agrees'>0</td><td class='differs'>2</td>" in page
    assert 'class="story"' in page  # the timelines of the differing cases
