"""`apiclab conform --random N --seed S`: random programs on every backend, the model as referee.

Each program runs on the model and on every available real backend; a real backend whose
guest-visible events differ from the model's is a disagreement. The first disagreement of each
kind (backend, and which event kinds the two sides show where they part) is shrunk by delta
debugging on the program's moves to a 1-minimal program that still disagrees, and saved as a
candidate case: a TOML file whose expectation is the model's observation, to be checked against
the SDM before it joins the suite (a finding is only a finding once a section supports a side).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apiclab.arch.registers import Reg
from apiclab.backends.base import Backend, BackendUnavailable
from apiclab.backends.emulator import ChildPool
from apiclab.conform.candidate import candidate_toml
from apiclab.conform.generate import Move, program_of, random_program
from apiclab.conform.match import first_divergence, visible
from apiclab.conform.runner import (
    CHILD_PROCESS_BACKENDS,
    SuiteProgress,
    advance_when_done,
    workers,
)
from apiclab.conform.shrink import ddmin
from apiclab.errors import UserError
from apiclab.files import write_atomic
from apiclab.guest.program import Handler, Mode, Program, Write

RUN_TIMEOUT_S = 10.0
NOT_RUN = "not run: "
Events = list[dict[str, Any]]


@dataclass
class Disagreement:
    index: int  # program number in the seed's stream
    backend: str
    signature: tuple[str, ...]
    moves: list[Move]
    handlers: dict[int, Handler]
    model_events: Events
    backend_events: Events
    at: int
    shrunk: Program | None = None
    mode: Mode = Mode.XAPIC_PM32  # the program's, kept by every shrunk variant
    cpus: int = 1
    shrunk_model: Events = field(default_factory=list)
    shrunk_backend: Events = field(default_factory=list)
    saved: Path | None = None


@dataclass
class BackendStats:
    programs: int = 0
    seconds: float = 0.0  # time inside this backend's runs (parallel runs overlap)
    agree: int = 0
    disagree: int = 0
    errors: int = 0
    first_error: str = ""
    not_run: int = 0  # programs the backend cannot express (it says why: `first_not_run`)
    first_not_run: str = ""

    def per_second(self) -> float:
        return self.programs / self.seconds if self.seconds else 0.0


def events_of(backend: Backend, program: Program) -> Events:
    result = backend.run(program, timeout_s=RUN_TIMEOUT_S)
    events = visible(result.trace)
    if result.timed_out:
        events.append({"kind": "timed-out"})
    return events


def signature(backend: str, model: Events, real: Events, at: int) -> tuple[str, ...]:
    """What kind of disagreement this is, to shrink each kind once."""
    left = model[at] if at < len(model) else {"kind": "(none)"}
    right = real[at] if at < len(real) else {"kind": "(none)"}
    differing = sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
    return (backend, str(left.get("kind")), str(right.get("kind")), ",".join(differing))


def _timed(backend: Backend, program: Program) -> tuple[Events | None, float, str]:
    start = time.monotonic()
    try:
        events = events_of(backend, program)
        return events, time.monotonic() - start, ""
    except BackendUnavailable as e:  # a program this backend cannot express (Bochs: pc-testdev)
        return None, time.monotonic() - start, f"{NOT_RUN}{e}"
    except Exception as e:  # reported per backend; one broken run does not end the campaign
        return None, time.monotonic() - start, f"{type(e).__name__}: {e}"


def campaign(
    n: int,
    seed: int,
    model: Backend,
    reals: dict[str, Backend],
    *,
    progress: SuiteProgress | None = None,
    first: int = 0,
    observe: Callable[[int, Events], None] | None = None,
) -> tuple[dict[str, BackendStats], list[Disagreement], float]:
    """Run programs first..first+n-1 of `seed` on the model and the real backends; collect
    disagreements. A program depends only on (seed, index), so a run split into index ranges
    (`apiclab campaign`) meets exactly the programs of the whole run; `observe(index, events)`
    sees the model's events of every program."""
    stats = {name: BackendStats() for name in ("model", *reals)}
    if progress is not None:
        for name in stats:
            progress.start(name, n)
    found: list[Disagreement] = []
    start = time.monotonic()
    programs = [random_program(seed, first + j) for j in range(n)]
    with ChildPool(workers()) as pool:  # interrupted, it kills the emulators and ends at once
        pooled: dict[tuple[int, str], Future[tuple[Events | None, float, str]]] = {
            (i, name): pool.submit(_timed, backend, programs[i][0])
            for name, backend in reals.items() if name in CHILD_PROCESS_BACKENDS
            for i in range(n)
        }
        if progress is not None:
            for (_, name), future in pooled.items():
                future.add_done_callback(advance_when_done(progress, name))
        for i, (program, moves, handlers) in enumerate(programs, start=first):
            model_events, secs, error = _timed(model, program)
            _count(stats["model"], secs, error)
            if progress is not None:
                progress.advance("model")
            if model_events is None:
                raise UserError(f"--random: the model failed on program {i} of seed {seed}: "
                                f"{error}")
            if observe:
                observe(i, model_events)
            for name, backend in reals.items():
                if (i - first, name) in pooled:
                    events, secs, error = pool.result(pooled.pop((i - first, name)))
                else:
                    events, secs, error = _timed(backend, program)
                    if progress is not None:
                        progress.advance(name)
                _count(stats[name], secs, error)
                if events is None:
                    continue
                at = first_divergence(model_events, events)
                if at < 0:
                    stats[name].agree += 1
                    continue
                stats[name].disagree += 1
                found.append(Disagreement(i, name, signature(name, model_events, events, at),
                                          moves, handlers, model_events, events, at,
                                          mode=program.mode, cpus=program.cpus))
    return stats, found, time.monotonic() - start


def _count(stats: BackendStats, seconds: float, error: str) -> None:
    stats.programs += 1
    stats.seconds += seconds
    if error.startswith(NOT_RUN):
        stats.not_run += 1
        stats.first_not_run = stats.first_not_run or error[len(NOT_RUN):]
    elif error:
        stats.errors += 1
        stats.first_error = stats.first_error or error


def shrink(d: Disagreement, model: Backend, real: Backend) -> None:
    """Delta-debug the moves of a disagreement to a 1-minimal program that still disagrees the
    same way (same signature), drop the handler policies it no longer uses, and record both
    sides' events on the result."""
    moves = ddmin(d.moves, lambda ms: still_disagrees_with(ms, d.handlers, model, real, d))
    used = {s.value & 0xFF for m in moves for s in m if isinstance(s, Write) and s.reg == Reg.ICR_LOW}
    handlers = {v: h for v, h in d.handlers.items() if v in used}
    if not still_disagrees_with(moves, handlers, model, real, d):
        handlers = d.handlers
    d.shrunk = program_of(moves, handlers, d.mode, d.cpus)
    d.shrunk_model = events_of(model, d.shrunk)
    d.shrunk_backend = events_of(real, d.shrunk)


def still_disagrees_with(moves: list[Move], handlers: dict[int, Handler], model: Backend,
                         real: Backend, d: Disagreement) -> bool:
    program = program_of(moves, handlers, d.mode, d.cpus)
    try:
        left, right = events_of(model, program), events_of(real, program)
    except Exception:
        return False
    at = first_divergence(left, right)
    return at >= 0 and signature(d.backend, left, right, at) == d.signature


def run_random(n: int, seed: int, backends: dict[str, Backend], out_dir: Path | None,
               *, as_json: bool = False, progress: SuiteProgress | None = None) -> int:
    """Run the campaign and print its summary. The shrunk disagreements are written as case
    files into `out_dir` only when it is given (`--candidates DIR`): never silently into the
    current directory; without it the summary says how to save them (same seed, same programs)."""
    model = backends.get("model")
    if model is None or not model.availability().available:
        reason = "not chosen" if model is None else model.availability().detail
        raise UserError(f"--random: the model is the referee and must run ({reason})")
    reals: dict[str, Backend] = {}
    skipped: dict[str, str] = {}
    for name, backend in backends.items():
        if name == "model":
            continue
        avail = backend.availability()
        if avail.available:
            reals[name] = backend
        else:
            skipped[name] = avail.detail
    stats, found, wall = campaign(n, seed, model, reals, progress=progress)
    kinds = len({d.signature for d in found})
    if progress is not None and kinds:
        progress.start("shrink", kinds)
    shrunk: dict[tuple[str, ...], Disagreement] = {}
    for d in found:
        if d.signature not in shrunk:
            shrink(d, model, reals[d.backend])
            if out_dir is not None:
                d.saved = _save(d, seed, out_dir)
            shrunk[d.signature] = d
            if progress is not None:
                progress.advance("shrink")
    doc = _summary(n, seed, stats, found, list(shrunk.values()), skipped, wall)
    doc["candidates_dir"] = str(out_dir) if out_dir is not None else None
    if as_json:
        print(json.dumps(doc, indent=1))
    else:
        print(_summary_text(doc))
    return 0


def _save(d: Disagreement, seed: int, out_dir: Path) -> Path:
    assert d.shrunk is not None
    name = f"random-{seed}-{d.index}-{d.backend}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # checked before the run; this is a change since (or a race)
        raise UserError(f"--candidates {out_dir}: cannot create it ({e.strerror})") from None
    path = out_dir / f"{name}.toml"
    write_atomic(path, candidate_toml(name, d.backend, seed, d.index, d.shrunk, d.shrunk_model,
                                      d.shrunk_backend))
    return path


def _summary(n: int, seed: int, stats: dict[str, BackendStats], found: Sequence[Disagreement],
             shrunk: Sequence[Disagreement], skipped: dict[str, str],
             wall: float) -> dict[str, Any]:
    return {
        "programs": n,
        "seed": seed,
        "wall_seconds": round(wall, 2),
        "programs_per_second_overall": round(n / wall, 2) if wall else 0.0,
        "backends": {
            name: {"programs": s.programs, "seconds": round(s.seconds, 2),
                   "programs_per_second": round(s.per_second(), 1), "agree": s.agree,
                   "disagree": s.disagree, "errors": s.errors, "first_error": s.first_error,
                   "not_run": s.not_run, "first_not_run": s.first_not_run}
            for name, s in stats.items()
        },
        "not_run": skipped,
        "disagreements": len(found),
        "kinds": [
            {"backend": d.backend, "signature": list(d.signature), "first_program": d.index,
             "count": sum(f.signature == d.signature for f in found),
             "steps": len(d.shrunk.steps) if d.shrunk else None,
             "candidate": str(d.saved) if d.saved else None}
            for d in shrunk
        ],
    }


def _summary_text(doc: dict[str, Any]) -> str:
    """Each kind of disagreement first, then the summary, so that the summary is what a terminal
    shows when the run ends."""
    lines = []
    for k in doc["kinds"]:
        backend, model_kind, real_kind, fields = k["signature"]
        lines.append(f"disagreement on {backend} ({k['count']} programs, "
                     f"first #{k['first_program']}): model shows {model_kind}, "
                     f"{backend} shows {real_kind}"
                     + (f" (fields {fields})" if fields else "")
                     + f"; shrunk to {k['steps']} steps"
                     + (f": {k['candidate']}" if k["candidate"] else ""))
    if lines:
        lines.append("")
    lines.append(f"{doc['programs']} random programs (seed {doc['seed']}) in "
                 f"{doc['wall_seconds']} s, {doc['programs_per_second_overall']} programs/s overall")
    for name, s in doc["backends"].items():
        line = (f"  {name:<6} {s['programs_per_second']:>7} programs/s alone "
                f"({s['seconds']} s in runs)")
        if name != "model":
            line += f"; agrees with the model on {s['agree']}, disagrees on {s['disagree']}"
        if s["errors"]:
            line += f", {s['errors']} runs failed (first: {s['first_error'][:200]})"
        if s["not_run"]:
            line += f"; {s['not_run']} not run (first: {s['first_not_run'][:200]})"
        lines.append(line)
    for name, reason in doc["not_run"].items():
        lines.append(f"  {name:<6} not run: {reason}")
    kinds = len(doc["kinds"])
    if kinds and doc.get("candidates_dir"):
        lines.append(f"{kinds} kinds of disagreement, each saved as a candidate case in "
                     f"{doc['candidates_dir']}")
    elif kinds:
        lines.append(f"{kinds} kinds of disagreement, not saved: add --candidates DIR to write "
                     "them as candidate case files (the same --seed gives the same programs)")
    return "\n".join(lines)
