"""The timeline of each conformance difference: the case's run on every backend that ran it, on
one time axis per case, with the first difference marked on the backend that differs."""

from __future__ import annotations

from typing import Any

from apiclab.conform.runner import BackendRun, CaseResult, SuiteResult
from apiclab.engine.trace import Trace
from apiclab.report.story import Story, story_from_events


def differing_cases(result: SuiteResult) -> list[CaseResult]:
    return [c for c in result.cases if any(r.outcome == "differs" for r in c.runs.values())]


def case_stories(case: CaseResult) -> list[Story]:
    """Every backend's run of one case; the expectation is the model's reference, so the model
    comes first when it ran."""
    stories = []
    for name, run in case.runs.items():
        if run.outcome == "not-run" or not run.trace:
            continue
        stories.append(story_from_events(
            run.trace, title=f"{case.case.name} on {name}: {run.outcome}", process=name,
            group=case.case.name, explanation=_difference_step(run), clock_vector=None,
        ))
    return stories


def difference_stories(result: SuiteResult) -> list[Story]:
    return [s for c in differing_cases(result) for s in case_stories(c)]


def _difference_step(run: BackendRun) -> list[dict[str, Any]]:
    """The first difference as a numbered step at the instant of the event where it happens (or
    the run's last event, when the run ended before it)."""
    verdict = run.verdict
    if verdict is None or verdict.agrees:
        return []
    seen = Trace(run.trace).guest_visible()
    at = seen[verdict.index] if verdict.index < len(seen) else (seen[-1] if seen else None)
    if at is None:
        return []
    expected = verdict.expected or {"kind": "no more events"}
    observed = verdict.observed or {"kind": "no more events"}
    text = (f"First difference, event {verdict.index}: expected {_short(expected)}, "
            f"observed {_short(observed)}" + (f" ({verdict.note})" if verdict.note else ""))
    return [{"step": "first-difference", "time_ns": at.time, "text": text}]


def _short(event: dict[str, Any]) -> str:
    from apiclab.conform.report import show_event

    return show_event(event)
