"""Running the suite: every case on every chosen backend, judged against the case's expectation.

The emulators (QEMU, Bochs) run as child processes, so their runs go to a thread pool as wide as
the machine; the model and KVM run in the calling thread meanwhile (KVM holds file descriptors
per VM, and the model is pure Python, which threads would not speed up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from apiclab.backends.base import Availability, Backend, BackendUnavailable
from apiclab.backends.emulator import ChildPool
from apiclab.conform.backends import evidence_backend
from apiclab.conform.case import Case
from apiclab.conform.match import Verdict, match_expectation, visible
from apiclab.engine.trace import Event

Outcome = Literal["agrees", "differs", "not-run"]
CHILD_PROCESS_BACKENDS = frozenset({"qemu", "bochs"})
RUN_TIMEOUT_S = 20.0


@dataclass
class BackendRun:
    """One case on one backend."""

    outcome: Outcome
    verdict: Verdict | None = None
    reason: str = ""  # why not run
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    trace: list[Event] = field(default_factory=list)  # the whole run, with times: for timelines


@dataclass
class CaseResult:
    case: Case
    runs: dict[str, BackendRun]

    def outcome(self, backend: str) -> Outcome:
        return self.runs[backend].outcome


@dataclass
class SuiteResult:
    backends: dict[str, Availability]
    cases: list[CaseResult]


class SuiteProgress(Protocol):
    """Told how many runs each available backend has and when each one ends (from any thread)."""

    def start(self, backend: str, total: int) -> None: ...

    def advance(self, backend: str) -> None: ...


def judge(case: Case, backend: Backend, timeout_s: float = RUN_TIMEOUT_S) -> BackendRun:
    """Run a case on a backend and compare with its expectation; failures to run are not-run."""
    start = time.monotonic()
    try:
        result = backend.run(case.program, timeout_s=timeout_s)
    except BackendUnavailable as e:
        return BackendRun("not-run", reason=str(e), seconds=time.monotonic() - start)
    except Exception as e:  # a backend bug is reported against the case, not a crash of the suite
        reason = f"{backend.name} failed: {type(e).__name__}: {e}"
        return BackendRun("not-run", reason=reason, seconds=time.monotonic() - start)
    seconds = time.monotonic() - start
    note = "the run timed out" if result.timed_out else ""
    verdict = match_expectation(case, result.trace, note=note)
    outcome: Outcome = "agrees" if verdict.agrees else "differs"
    evidence = _short_evidence(result.evidence)
    if outcome == "differs":
        evidence.update(_more_evidence(case, backend.name))
    return BackendRun(outcome, verdict, seconds=seconds, events=visible(result.trace),
                      evidence=evidence, trace=list(result.trace.events))


def _more_evidence(case: Case, name: str) -> dict[str, Any]:
    """Re-run a differing case on the backend's evidence-recording variant, if it has one."""
    backend = evidence_backend(name)
    if backend is None:
        return {}
    try:
        result = backend.run(case.program, timeout_s=RUN_TIMEOUT_S)
    except Exception as e:  # evidence is a bonus; its absence is reported, not fatal
        return {"evidence_run": f"failed: {type(e).__name__}: {e}"}
    out = _short_evidence(result.evidence)
    out["evidence_run_events"] = visible(result.trace)
    return out


def _short_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        if key == "tracepoints" and isinstance(value, list):
            value = [f"{t.get('event')}: {t.get('message')}" for t in value
                     if isinstance(t, dict) and t.get("own", True)][:200]
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and len(value) > 2000:
            value = value[:2000] + "..."
        out[key] = value
    return out


def advance_when_done(progress: SuiteProgress, name: str) -> Callable[[Future[Any]], None]:
    """A done-callback for a pooled run: the display moves as runs end, not as they are read."""
    return lambda _future: progress.advance(name)


def workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_suite(
    cases: Sequence[Case],
    backends: dict[str, Backend],
    *,
    progress: SuiteProgress | None = None,
) -> SuiteResult:
    availability = {name: b.availability() for name, b in backends.items()}
    runs: dict[tuple[int, str], BackendRun] = {}
    pooled: dict[tuple[int, str], Future[BackendRun]] = {}
    if progress is not None:
        for name in backends:
            if availability[name].available:
                progress.start(name, len(cases))
    with ChildPool(workers()) as pool:  # interrupted, it kills the emulators and ends at once
        for name, backend in backends.items():
            if not availability[name].available or name not in CHILD_PROCESS_BACKENDS:
                continue
            for i, case in enumerate(cases):
                pooled[(i, name)] = pool.submit(judge, case, backend)
                if progress is not None:
                    pooled[(i, name)].add_done_callback(advance_when_done(progress, name))
        for name, backend in backends.items():
            for i, case in enumerate(cases):
                if not availability[name].available:
                    runs[(i, name)] = BackendRun("not-run", reason=availability[name].detail)
                elif name not in CHILD_PROCESS_BACKENDS:
                    runs[(i, name)] = judge(case, backend)
                    if progress is not None:
                        progress.advance(name)
        for key, future in pooled.items():
            runs[key] = pool.result(future)
    results = [
        CaseResult(case, {name: runs[(i, name)] for name in backends})
        for i, case in enumerate(cases)
    ]
    return SuiteResult(availability, results)
