"""Running the suite: every case on every chosen backend, judged against the case's expectation.

Every backend runs at once, in a thread pool: QEMU and Bochs boot once per batch of cases (the
agent's batch mode, apiclab.guest.agent.batch: one emulator process runs its cases one after
another, a full system reset between two; a case that does not finish there runs alone), KVM runs
each batch's one-CPU cases on one VM put back in the state of a new one between two
(apiclab.backends.kvm.reuse; the ioctls release the GIL), each batch in a thread of its own, and
the model, pure Python, runs in the calling thread meanwhile. KVM's evidence re-runs
(tracepoints, global to the host) run one at a time, on one VM, in a thread kept for them, as
soon as its plain runs are done, so that no other VM of this process is in their capture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from apiclab.backends.base import Availability, Backend, BackendUnavailable, RunResult
from apiclab.backends.emulator import ChildPool, ChildrenStopped, children_stopping
from apiclab.conform.backends import evidence_backend, evidence_session
from apiclab.conform.case import Case
from apiclab.conform.match import Verdict, match_expectation, visible
from apiclab.engine.trace import Event
from apiclab.guest.agent import batch
from apiclab.guest.program import Program

Outcome = Literal["agrees", "differs", "not-run"]
CHILD_PROCESS_BACKENDS = frozenset({"qemu", "bochs"})
RUN_TIMEOUT_S = 20.0
# a batch's time-out: one case's, plus this per case in it
BATCH_TIMEOUT_PER_CASE_S = 1.0


class BatchBackend(Backend, Protocol):
    """A backend that can run many programs in one boot (QEMU, Bochs); None = not finished."""

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float
                  ) -> list[RunResult | None]: ...


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


def judge(case: Case, backend: Backend, timeout_s: float = RUN_TIMEOUT_S, *,
          evidence: bool = True) -> BackendRun:
    """Run a case on a backend and compare with its expectation; failures to run are not-run.
    With `evidence`, a case that differs is run again on the backend's evidence variant."""
    start = time.monotonic()
    try:
        result = backend.run(case.program, lapic_image=case.image, timeout_s=timeout_s)
    except BackendUnavailable as e:
        return BackendRun("not-run", reason=str(e), seconds=time.monotonic() - start)
    except ChildrenStopped:
        raise
    except Exception as e:  # a backend bug is reported against the case, not a crash of the suite
        reason = f"{backend.name} failed: {type(e).__name__}: {e}"
        return BackendRun("not-run", reason=reason, seconds=time.monotonic() - start)
    run = judged(case, result, time.monotonic() - start)
    if evidence:
        add_evidence(run, case, backend.name)
    return run


def judged(case: Case, result: RunResult, seconds: float) -> BackendRun:
    """A finished run compared with the case's expectation."""
    note = "the run timed out" if result.timed_out else ""
    verdict = match_expectation(case, result.trace, note=note)
    outcome: Outcome = "agrees" if verdict.agrees else "differs"
    evidence = _short_evidence(result.evidence)
    if verdict.agrees:  # tracepoints a batch captured for every run are evidence of differences
        evidence.pop("tracepoints", None)
    return BackendRun(outcome, verdict, seconds=seconds, events=visible(result.trace),
                      evidence=evidence, trace=list(result.trace.events))


def add_evidence(run: BackendRun, case: Case, name: str) -> None:
    if run.outcome == "differs":
        run.evidence.update(_more_evidence(case, name))


def judge_batch(cases: Sequence[Case], backend: BatchBackend, *,
                evidence: bool = True) -> list[BackendRun]:
    """`cases` in one boot of `backend` (one VM for KVM); each case that did not finish there is
    run alone (`evidence` as for `judge`), as is a case with an APIC image of its own (a batch
    starts every program from power-up). A case's `seconds` is its share of the boot's wall
    time."""
    if any(c.image is not None for c in cases):
        plain = [c for c in cases if c.image is None]
        done = iter(judge_batch(plain, backend, evidence=evidence) if plain else [])
        return [judge(c, backend, evidence=evidence) if c.image is not None else next(done)
                for c in cases]
    start = time.monotonic()
    timeout_s = RUN_TIMEOUT_S + BATCH_TIMEOUT_PER_CASE_S * len(cases)
    try:
        results = backend.run_batch([c.program for c in cases], timeout_s=timeout_s)
    except BackendUnavailable as e:
        return [BackendRun("not-run", reason=str(e)) for _ in cases]
    except ChildrenStopped:
        raise
    except Exception:  # a batch that cannot run at all: every case alone, as without batches
        results = [None] * len(cases)
    share = (time.monotonic() - start) / max(1, len(cases))
    runs: list[BackendRun] = []
    for case, result in zip(cases, results, strict=True):
        if result is not None:
            runs.append(judged(case, result, share))
            continue
        if children_stopping():  # the cases run alone (KVM's for several CPUs start no child)
            raise ChildrenStopped("interrupted")
        runs.append(judge(case, backend, evidence=evidence))
    return runs


def judge_all(cases: Sequence[Case], backend: Backend, *,
              evidence: bool = True) -> list[BackendRun]:
    """`cases` one after another, stopping at once when the run is being interrupted."""
    runs: list[BackendRun] = []
    for case in cases:
        if children_stopping():
            raise ChildrenStopped("interrupted")
        runs.append(judge(case, backend, evidence=evidence))
    return runs


def evidence_for(runs: Sequence[tuple[BackendRun, Case]], name: str) -> None:
    """The evidence re-runs of the differing runs, one after another, in one session; a run
    whose tracepoints its batch captured already needs none."""
    differing = [(run, case) for run, case in runs
                 if run.outcome == "differs" and "tracepoints" not in run.evidence]
    if not differing:
        return
    with evidence_session(name) as backend:
        for run, case in differing:
            if children_stopping():
                raise ChildrenStopped("interrupted")
            run.evidence.update(_more_evidence(case, name, backend))


def _more_evidence(case: Case, name: str, backend: Backend | None = None) -> dict[str, Any]:
    """Re-run a differing case on the backend's evidence-recording variant, if it has one."""
    if backend is None:
        backend = evidence_backend(name)
    if backend is None:
        return {}
    try:
        result = backend.run(case.program, lapic_image=case.image, timeout_s=RUN_TIMEOUT_S)
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


def _batches(cases: Sequence[Case], parts: int, backend: Backend) -> list[list[int]]:
    return batch.chunks([c.program for c in cases], parts,
                        several_by_cpus=getattr(backend, "batches_several_cpus", False))


def run_suite(
    cases: Sequence[Case],
    backends: dict[str, Backend],
    *,
    progress: SuiteProgress | None = None,
    batched: bool = True,
) -> SuiteResult:
    """Every case on every available backend, all backends at once. `batched=False` boots one
    emulator per case (the batch mode's reference, bench/conform_speed.py)."""
    availability = {name: b.availability() for name, b in backends.items()}
    runs: dict[tuple[int, str], BackendRun] = {}
    live = {name: b for name, b in backends.items() if availability[name].available}
    for name in backends:
        if name not in live:
            for i in range(len(cases)):
                runs[(i, name)] = BackendRun("not-run", reason=availability[name].detail)
    if progress is not None:
        for name in live:
            progress.start(name, len(cases))
    for backend in live.values():  # e.g. KVM's time-out signal handler, from the main thread
        prepare = getattr(backend, "prepare_threads", None)
        if prepare is not None:
            prepare()
    # the longest first: Bochs' batches, then QEMU's, then KVM's; KVM's evidence re-runs come
    # after its runs, one at a time
    plan: list[tuple[str, list[int], Callable[..., list[BackendRun]], Backend]] = []
    for name in sorted(live, key=lambda n: n != "bochs"):
        backend = live[name]
        if name == "model":
            continue
        if batched and hasattr(backend, "run_batch"):  # an emulator's boot, KVM's VM
            plan += [(name, indices, judge_batch, backend)
                     for indices in _batches(cases, workers(), backend)]
        else:
            plan += [(name, [i], judge_all, backend) for i in range(len(cases))]
    # threads wait on emulators and on KVM_RUN, not on the CPU: twice the cores keeps both busy;
    # with batches, a thread each, and one for the evidence re-runs, so that these start as
    # soon as KVM's runs are done instead of queueing behind the emulators' batches
    threads = 2 * workers()
    if batched:
        threads = max(threads, len(plan) + 1)
    with ChildPool(threads) as pool:  # interrupted, it kills the emulators and ends at once
        pooled: list[tuple[list[int], str, Future[list[BackendRun]]]] = []
        for name, indices, fn, backend in plan:
            future = pool.submit(fn, [cases[i] for i in indices], backend,
                                 evidence=name in CHILD_PROCESS_BACKENDS)
            if progress is not None:
                for _ in indices:
                    future.add_done_callback(advance_when_done(progress, name))
            pooled.append((indices, name, future))
        if "model" in live:
            for i, case in enumerate(cases):
                runs[(i, "model")] = judge(case, live["model"])
                if progress is not None:
                    progress.advance("model")
        # KVM's runs first (short), so that its evidence re-runs overlap the emulators' batches
        pooled.sort(key=lambda entry: entry[1] in CHILD_PROCESS_BACKENDS)
        evidence: list[Future[None]] = []
        for indices, name, future in pooled:
            done: list[BackendRun] = pool.result(future)
            for i, run in zip(indices, done, strict=True):
                runs[(i, name)] = run
            if name not in CHILD_PROCESS_BACKENDS and all(
                    (i, name) in runs for i in range(len(cases))):
                ran = [(runs[(i, name)], case) for i, case in enumerate(cases)]
                evidence.append(pool.submit(evidence_for, ran, name))
        for future_evidence in evidence:
            pool.result(future_evidence)
    results = [
        CaseResult(case, {name: runs[(i, name)] for name in backends})
        for i, case in enumerate(cases)
    ]
    return SuiteResult(availability, results)
