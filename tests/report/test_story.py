"""The adapter from a trace to a story: spans, marks and markers read from the events."""

from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.hypervisor.profiles import PRE_FIX, get_profile
from apiclab.report.explain import explain_failure
from apiclab.report.story import Span, story_from_events
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, run_storm


def _seed_story():
    result = run_storm(get_profile(PRE_FIX), apicv=True, reboots=20, seed=1)
    events = result.first_failure
    assert events is not None
    story = story_from_events(
        events, title="t", process="p", explanation=explain_failure(events), tsc_hz=DEFAULT_TSC_HZ
    )
    return events, story


def test_the_seed_story_has_the_stale_vector_and_the_clock_as_lanes():
    _, story = _seed_story()
    assert story.lanes[:2] == [0xE1, 0xD1]


def test_the_stale_vector_goes_from_irr_to_rvi_alone_to_in_service_until_the_end():
    events, story = _seed_story()
    origin = next(e.time for e in events if e.kind == "reboot")
    states = [(s.state, s.open_at_end) for s in story.spans if s.vector == 0xE1 and s.start >= -2_000_000]
    assert states == [("pending", False), ("rvi", False), ("service", True)]
    service = next(s for s in story.spans if s.vector == 0xE1 and s.state == "service")
    stale = next(e for e in events if e.kind == "deliver" and not e.irr_was_set)
    assert service.start == stale.time - origin and service.end == story.end


def test_the_deadline_is_three_seconds_after_the_wait_and_the_bugcheck_just_past_it():
    _, story = _seed_story()
    at = {m.kind: m.time for m in story.markers}
    assert at["deadline"] - at["wait"] == 3_000_000_000
    assert 0 < at["bugcheck"] - at["deadline"] < 1_000


def test_the_deadline_is_found_from_the_trace_when_no_tsc_rate_is_given():
    events, _ = _seed_story()
    story = story_from_events(events, title="t", process="p")
    at = {m.kind: m.time for m in story.markers}
    assert abs(at["deadline"] - at["wait"] - 3_000_000_000) < 10


def test_explanation_steps_are_numbered_at_their_instants():
    events, story = _seed_story()
    origin = next(e.time for e in events if e.kind == "reboot")
    chain = explain_failure(events)
    assert [s.number for s in story.steps] == list(range(1, len(chain) + 1))
    assert [s.time for s in story.steps] == [link["time_ns"] - origin for link in chain]


def test_an_interrupt_taken_at_once_leaves_marks_but_no_span():
    trace = Trace()
    trace.record(0, evt.Accept, vector=0x51, source="device", irr=[0x51], isr=[], tpr=0, ppr=0)
    trace.record(0, evt.Deliver, vector=0x51, irr=[], isr=[0x51], tpr=0, ppr=0x50)
    trace.record(10, evt.Eoi, irr=[], isr=[], tpr=0, ppr=0)
    story = story_from_events(trace.events, title="t", process="p")
    assert story.spans == [Span(0x51, "service", 0, 10)]
    assert [(m.kind, m.vector) for m in story.marks] == [("arrive", 0x51), ("deliver", 0x51), ("eoi", 0x51)]


def test_registers_at_an_instant_are_the_last_recorded():
    trace = Trace()
    trace.record(0, evt.Accept, vector=0x61, source="device", irr=[0x61], isr=[], tpr=0, ppr=0)
    trace.record(50, evt.Deliver, vector=0x61, irr=[], isr=[0x61], tpr=0, ppr=0x60)
    story = story_from_events(trace.events, title="t", process="p")
    assert story.registers_at(49)["irr"] == [0x61]
    assert story.registers_at(50)["ppr"] == 0x60
