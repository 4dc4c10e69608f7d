"""The Perfetto / chrome://tracing export: valid trace-event JSON that gives back its spans."""

import json
from collections import defaultdict

from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.guest.windows7 import Windows7Config
from apiclab.hypervisor.profiles import FIXED, PRE_FIX, get_profile
from apiclab.report.perfetto import spans_from_trace_events, story_key, trace_events
from apiclab.report.stories import reproduce_stories
from apiclab.report.story import story_from_events
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, run_storm

REQUIRED = {
    "M": {"name", "pid", "args"},
    "X": {"name", "ts", "dur", "pid", "tid"},
    "B": {"name", "ts", "pid", "tid"},
    "E": {"ts", "pid", "tid"},
    "i": {"name", "ts", "pid", "tid", "s"},
    "C": {"name", "ts", "pid", "args"},
}


def _stories():
    results = [run_storm(get_profile(p), apicv=True, reboots=15, seed=1) for p in (PRE_FIX, FIXED)]
    return reproduce_stories(results, Windows7Config(), DEFAULT_TSC_HZ)


def validate(doc):
    """The Trace Event Format's rules this exporter relies on; returns the list of problems."""
    problems = []
    events = doc["traceEvents"]
    last_ts = {}
    open_b = defaultdict(int)
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph not in REQUIRED:
            problems.append(f"#{i}: phase {ph!r}")
            continue
        missing = REQUIRED[ph] - set(e)
        if missing:
            problems.append(f"#{i} ({ph}): missing {sorted(missing)}")
        if ph == "M":
            continue
        if not isinstance(e["ts"], (int, float)) or (ph == "X" and e["dur"] < 0):
            problems.append(f"#{i}: bad ts/dur")
        track = (e["pid"], e.get("tid"), e["name"] if ph == "C" else "")
        if e["ts"] < last_ts.get(track, float("-inf")):
            problems.append(f"#{i}: time goes back on track {track}")
        last_ts[track] = e["ts"]
        if ph == "C" and not all(isinstance(v, (int, float)) for v in e["args"].values()):
            problems.append(f"#{i}: counter values must be numbers")
        if ph == "B":
            open_b[(e["pid"], e["tid"])] += 1
        if ph == "E":
            open_b[(e["pid"], e["tid"])] -= 1
            if open_b[(e["pid"], e["tid"])] < 0:
                problems.append(f"#{i}: E without B")
    problems += [f"unbalanced B/E on {k}" for k, n in open_b.items() if n]
    problems += _overlaps(events)
    return problems


def _overlaps(events):
    """Complete events of one thread must nest (viewers drop the ones that only overlap)."""
    problems = []
    by_thread = defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for thread, slices in by_thread.items():
        stack = []
        for start, end in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            if stack and end > stack[-1]:
                problems.append(f"slices overlap without nesting on {thread}")
                break
            stack.append(end)
    return problems


def test_the_export_is_valid_trace_event_json():
    doc = json.loads(json.dumps(trace_events(_stories())))
    assert validate(doc) == []
    phases = {e["ph"] for e in doc["traceEvents"]}
    assert {"M", "X", "C", "i"} <= phases


def test_the_validator_catches_what_it_checks():
    bad = {"traceEvents": [
        {"ph": "X", "name": "a", "ts": 5, "dur": 1, "pid": 1, "tid": 1},
        {"ph": "X", "name": "b", "ts": 4, "dur": 1, "pid": 1, "tid": 1},
        {"ph": "B", "name": "c", "ts": 6, "pid": 1, "tid": 1},
        {"ph": "i", "ts": 7, "pid": 1, "tid": 1},
        {"ph": "X", "name": "d", "ts": 10, "dur": 5, "pid": 1, "tid": 2},
        {"ph": "X", "name": "e", "ts": 12, "dur": 5, "pid": 1, "tid": 2},
    ]}
    problems = validate(bad)
    assert any("time goes back" in p for p in problems)
    assert any("unbalanced" in p for p in problems)
    assert any("missing" in p for p in problems)
    assert any("without nesting" in p for p in problems)


def test_one_process_per_profile_one_thread_per_run():
    stories = _stories()
    doc = trace_events(stories)
    processes = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    threads = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"]
    assert processes == list(dict.fromkeys(s.process for s in stories))
    assert [t for t in threads if ": " in t] == [story_key(s) for s in stories]


def test_spans_round_trip_to_the_story_read_from_the_trace():
    stories = _stories()
    back = spans_from_trace_events(json.loads(json.dumps(trace_events(stories))))
    for story in stories:
        assert back.get(story_key(story), []) == story.spans


def test_slices_of_one_thread_nest_even_when_a_vector_is_pending_while_in_service():
    trace = Trace()
    trace.record(0, evt.Accept, vector=0x61, source="device", irr=[0x61], isr=[], tpr=0, ppr=0)
    trace.record(10, evt.Deliver, vector=0x61, irr=[], isr=[0x61], tpr=0, ppr=0x60)
    trace.record(20, evt.Accept, vector=0x61, source="device", irr=[0x61], isr=[0x61], tpr=0, ppr=0x60)
    trace.record(30, evt.Eoi, irr=[0x61], isr=[], tpr=0, ppr=0)
    trace.record(40, evt.Deliver, vector=0x61, irr=[], isr=[0x61], tpr=0, ppr=0x60)
    story = story_from_events(trace.events, title="t", process="p")
    doc = trace_events([story])
    assert validate(doc) == []
    assert spans_from_trace_events(doc)[story_key(story)] == story.spans


def test_spans_read_back_agree_with_the_trace_they_came_from():
    """Independently of the adapter: at every register snapshot of the trace, a vector is in
    service exactly when a read-back in-service span covers that instant."""
    result = run_storm(get_profile(PRE_FIX), apicv=True, reboots=15, seed=1)
    events = result.first_failure
    stories = reproduce_stories([result], Windows7Config(), DEFAULT_TSC_HZ)
    back = spans_from_trace_events(trace_events(stories[:1]))
    spans = next(iter(back.values()))
    origin = next(e.time for e in events if e.kind == "reboot")
    last_at = {}
    for e in events:
        if e.isr is not None:
            last_at[e.time] = evt.fields_of(e)  # the state after the last event at an instant counts
    checked = 0
    for time, data in last_at.items():
        t = time - origin
        covered = {
            s.vector for s in spans
            if s.state == "service" and s.start <= t and (t < s.end or s.open_at_end)
        }
        assert covered == set(data["isr"]), f"at {t} ns"
        checked += 1
    assert checked > 10


def test_deliveries_eois_and_resets_are_instants():
    doc = trace_events(_stories()[:1])
    cats = {e["cat"] for e in doc["traceEvents"] if e["ph"] == "i"}
    assert {"apic.deliver", "apic.eoi", "vcpu.reset", "vcpu.bugcheck"} <= cats
