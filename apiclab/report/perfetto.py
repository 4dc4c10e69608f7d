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
    for tid, story in enumerate(stories, 1):
        if story.process not in pids:
            pids[story.process] = len(pids) + 1
            events.append(_meta(pids[story.process], 0, "process_name", story.process))
        pid = pids[story.process]
        # One thread per vCPU and story: a profile's failing and healthy reboots are two runs.
        events.append(_meta(pid, tid, "thread_name", f"{story.thread}: {story.title}"))
        events.extend(_story_events(story, pid, tid))
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def _meta(pid: int, tid: int, name: str, value: str) -> dict[str, Any]:
    return {"ph": "M", "pid": pid, "tid": tid, "name": name, "args": {"name": value}}


def _story_events(story: Story, pid: int, tid: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for span in story.spans:
        out.append({
            "ph": "X", "pid": pid, "tid": tid, "cat": SPAN_CATEGORY,
            "name": span_name(span.vector, span.state), "ts": _us(span.start),
            "dur": _us(span.end - span.start),
            "args": {"vector": span.vector, "state": span.state, "open_at_end": span.open_at_end},
        })
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
    """The pending/in-service spans of each thread (by thread name) read back from a document
    `trace_events` wrote: the inverse used to check that nothing is lost on the way."""
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"
    }
    spans: dict[str, list[Span]] = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "X" and e.get("cat") == SPAN_CATEGORY:
            start = round(e["ts"] * 1000)
            spans.setdefault(names[(e["pid"], e["tid"])], []).append(
                Span(e["args"]["vector"], e["args"]["state"], start,
                     start + round(e["dur"] * 1000), e["args"]["open_at_end"])
            )
    return spans
