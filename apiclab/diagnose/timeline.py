"""A replayed kvm trace as timeline stories (`diagnose --timeline/--perfetto`): one story per
vCPU, its IRR/ISR/TPR/PPR as the replay reconstructed them, and each verdict on a held-off or
in-service vector as a numbered step at the moment the trace shows it began."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apiclab.diagnose.detect import MAX_EVIDENCE_BYTES
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.replay import replay
from apiclab.diagnose.verdicts import CpuVerdict
from apiclab.files import InputFileError, read_text

if TYPE_CHECKING:
    from apiclab.report.story import Story


def trace_stories(path: Path, judged: Sequence[CpuVerdict],
                  pids: set[int] | None = None) -> list[Story]:
    """Replay the trace at `path` again, this time keeping every register change, and read it
    into one story per vCPU with the verdicts as its explanation."""
    from apiclab.report.story import story_from_events

    try:
        text = read_text(path, max_bytes=MAX_EVIDENCE_BYTES)
    except InputFileError as e:
        raise EvidenceError(str(e)) from None
    r = replay(text, str(path), pids, observations=True)
    stories = []
    for cpu, trace in sorted((r.observations or {}).items()):
        events = list(trace)
        if not events:
            continue
        origin = events[0].time
        steps = _steps(next((v for v in judged if v.evidence.cpu == cpu), None), origin)
        stories.append(story_from_events(
            events, title=f"vCPU {cpu}: the replayed trace", process=f"diagnose {path.name}",
            thread=f"vCPU {cpu}", group="diagnose", explanation=steps, clock_vector=None))
    return stories


def _steps(verdict: CpuVerdict | None, origin: int) -> list[dict[str, Any]]:
    """The verdicts that have a moment in the trace, in time order, as explanation links."""
    if verdict is None:
        return []
    links: list[dict[str, Any]] = []
    for s in verdict.in_service:
        if s.since is not None:
            links.append({"step": "in-service", "time_ns": round(s.since * 1e9),
                          "text": f"{s.vector:#04x} in service: {s.detail}"})
    for p in verdict.pending:
        if p.since is not None:
            state = "deliverable" if p.deliverable else "held off"
            links.append({"step": "pending", "time_ns": round(p.since * 1e9),
                          "text": f"{p.vector:#04x} {state}: {p.detail}"})
    for link in links:  # a state older than the trace's first event shows at its start
        link["time_ns"] = max(link["time_ns"], origin)
    return sorted(links, key=lambda link: int(link["time_ns"]))
