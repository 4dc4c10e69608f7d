"""The same story as Chrome trace-event JSON (`--perfetto FILE.json`), for ui.perfetto.dev and
chrome://tracing.

Format: the Trace Event Format's JSON object form {"traceEvents": [...]} (timestamps in µs, as
floats, so nanoseconds survive). One process per backend/profile ("M" process_name), one thread
per vCPU ("M" thread_name); per vector a slice ("X", complete event) for each pending or
in-service span; "C" counter events for TPR, PPR/VPPR, RVI and SVI; "i" instant events (thread
scope) for arrivals, deliveries, EOIs and the vCPU markers (reset, KVM_SET_LAPIC, bugcheck...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiclab.report.story import Span, Story

SPAN_CATEGORY = "apic.span"
_STATE_NAMES = {"pending": "pending", "rvi": "RVI only (VIRR clear)", "service": "in service"}


def _us(ns: int) -> float:
    return ns / 1000


def span_name(vector: int, state: str) -> str:
    return f"{vector:#04x} {_STATE_NAMES[state]}"


def trace_events(stories: Sequence[Story]) -> dict[str, Any]:
    """The stories as one trace-event document; times are µs since each story's origin."""
    events: list[dict[str, Any]] = []
    pids: dict[str, int] = {}
    for k, story in enumerate(stories, 1):
        if story.process not in pids:
            pids[story.process] = len(pids) + 1
            events.append(_meta(pids[story.process], 0, "process_name", story.process))
        pid, tid = pids[story.process], k * 1000
        # One thread per vCPU and story (a profile's failing and healthy reboots are two runs),
        # carrying the instants and counters; the spans go on tracks of their own just below.
        events.append(_meta(pid, tid, "thread_name", story_key(story)))
        events.append(_meta(pid, tid, "thread_sort_index", tid, key="sort_index"))
        events.extend(_span_events(story, pid, tid))
        events.extend(_story_events(story, pid, tid))
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def story_key(story: Story) -> str:
    return f"{story.thread}: {story.title}"


def _meta(pid: int, tid: int, name: str, value: Any, key: str = "name") -> dict[str, Any]:
    return {"ph": "M", "pid": pid, "tid": tid, "name": name, "args": {key: value}}


def _span_events(story: Story, pid: int, tid: int) -> list[dict[str, Any]]:
    """Complete events ("X") per vector, on as few tracks as keep them properly nested: trace
    viewers drop slices of one thread that overlap without nesting, and a vector can be pending
    again while still in service."""
    tracks: dict[tuple[int, int], list[int]] = {}  # (vector, n) -> ends of the open slices
    lanes: dict[tuple[int, int], int] = {}  # (vector, n) -> tid, highest vector first
    out: list[dict[str, Any]] = []
    for span in sorted(story.spans, key=lambda s: (-s.vector, s.start, -s.end)):
        n = 0
        while True:
            stack = tracks.setdefault((span.vector, n), [])
            while stack and stack[-1] <= span.start:
                stack.pop()
            if not stack or stack[-1] >= span.end:
                stack.append(span.end)
                break
            n += 1
        lane = lanes.setdefault((span.vector, n), tid + 1 + len(lanes))
        out.append({
            "ph": "X", "pid": pid, "tid": lane, "cat": SPAN_CATEGORY,
            "name": span_name(span.vector, span.state), "ts": _us(span.start),
            "dur": _us(span.end - span.start),
            "args": {"vector": span.vector, "state": span.state,
                     "open_at_end": span.open_at_end, "story": story_key(story)},
        })
    meta = []
    for (vector, n), lane in lanes.items():
        name = f"{story.thread} {vector:#04x}" + (f" ({n + 1})" if n else "")
        meta += [_meta(pid, lane, "thread_name", name),
                 _meta(pid, lane, "thread_sort_index", lane, key="sort_index")]
    return meta + sorted(out, key=lambda e: (e["tid"], e["ts"]))


def _story_events(story: Story, pid: int, tid: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for mark in story.marks:
        out.append({
            "ph": "i", "s": "t", "pid": pid, "tid": tid, "cat": f"apic.{mark.kind}",
            "name": f"{mark.kind} {mark.vector:#04x}", "ts": _us(mark.time),
            "args": {"vector": mark.vector, **({"note": mark.note} if mark.note else {})},
        })
    for marker in story.markers:
        out.append({
            "ph": "i", "s": "t", "pid": pid, "tid": tid, "cat": f"vcpu.{marker.kind}",
            "name": marker.label, "ts": _us(marker.time),
        })
    last: dict[str, int] = {}
    for t, regs in story.samples:
        for key in ("tpr", "ppr", "vppr", "rvi", "svi"):
            if key in regs and last.get(key) != regs[key]:
                last[key] = regs[key]
                out.append({
                    "ph": "C", "pid": pid, "tid": tid, "name": f"{story.thread} {key.upper()}",
                    "ts": _us(t), "args": {key.upper(): regs[key]},
                })
    out.sort(key=lambda e: e["ts"])  # stable: each track stays in time order
    return out


def spans_from_trace_events(doc: dict[str, Any]) -> dict[str, list[Span]]:
    """The pending/in-service spans of each story (by `story_key`) read back from a document
    `trace_events` wrote: the inverse used to check that nothing is lost on the way."""
    spans: dict[str, list[Span]] = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X" and e.get("cat") == SPAN_CATEGORY:
            start = round(e["ts"] * 1000)
            spans.setdefault(e["args"]["story"], []).append(
                Span(e["args"]["vector"], e["args"]["state"], start,
                     start + round(e["dur"] * 1000), e["args"]["open_at_end"])
            )
    for found in spans.values():
        found.sort(key=lambda s: (s.start, s.vector, s.state))
    return spans
