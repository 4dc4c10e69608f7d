"""Where a run on real KVM and the model's run of the same program and image differ, and why.

Both traces are compared on their guest-visible events without times (the model's clock is
virtual, the host's is the TSC): the first differing event, the outcome on each side, the
host-read registers, and the KVM tracepoints about the vectors involved. Neither side is adjusted
to agree; the difference is the finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apiclab.engine.events import Event, WaitDone, fields_of
from apiclab.engine.trace import Trace
from apiclab.executors.compare import first_difference
from apiclab.guest.program import Mode, Program

RELEVANT_TRACEPOINTS = ("kvm_apic_accept_irq", "kvm_inj_virq", "kvm_eoi", "kvm_pv_eoi",
                        "kvm_apicv_accept_irq")


def outcome(trace: Trace) -> str:
    """"bugcheck" if the guest bug-checked, "tick" if its wait completed, else "hang"."""
    kinds = [e.kind for e in trace.events]
    if "bugcheck" in kinds:
        return "bugcheck"
    waits = [e for e in trace.events if isinstance(e, WaitDone)]
    if waits and waits[-1].outcome == "done":
        return "tick"
    if "timeout" in kinds or "end" not in kinds:
        return "hang"
    return "no-wait"


def _plain(event: Event) -> dict[str, Any]:
    return {"kind": event.kind, **fields_of(event)}


def trace_difference(host: Trace, model: Trace) -> dict[str, Any] | None:
    """The first guest-visible event (times ignored) where the host's run leaves the model's
    (`apiclab.executors.compare.first_difference`, the model as the expectation)."""
    diff = first_difference([_plain(e) for e in model.guest_visible()],
                            [_plain(e) for e in host.guest_visible()])
    if diff is None:
        return None
    return {"index": diff.index, "host": diff.observed, "model": diff.expected}


def _vectors_in(diff: Mapping[str, Any]) -> set[int]:
    out: set[int] = set()
    for side in ("host", "model"):
        event = diff.get(side) or {}
        if "vector" in event:
            out.add(int(event["vector"]))
    return out


def _tracepoints_about(tracepoints: Sequence[Mapping[str, Any]],
                       vectors: set[int]) -> list[dict[str, Any]]:
    """Our process's interrupt tracepoints about `vectors`, with the EOI writes and their MSRs,
    in order, up to the third acceptance of the same vector (the rest repeats)."""
    keep = []
    for tp in tracepoints:
        if not tp.get("own"):
            continue
        event, msg = tp.get("event"), str(tp.get("message", ""))
        eoi_write = (event == "kvm_apic" and "APIC_EOI" in msg) or (
            event == "kvm_msr" and "msr_write 80b" in msg)
        mentions = any(f"vec {v} " in msg + " " or f"vector {v}" in msg for v in vectors)
        if (event in RELEVANT_TRACEPOINTS and (mentions or "eoi" in str(event))) or eoi_write:
            keep.append({"event": event, "message": msg, "time_s": tp.get("time_s")})
    return keep[:24]


def _eoi_vector(message: str) -> int | None:
    """The vector of a kvm_eoi tracepoint ("apicid 0 vector 209"); None for "vector -1"."""
    tail = message.rsplit("vector", 1)[-1].strip()
    try:
        vector = int(tail)
    except ValueError:
        return None
    return vector if vector >= 0 else None


def eoi_origins(tracepoints: Sequence[Mapping[str, Any]], program: Program) -> dict[str, Any]:
    """Which EOIs KVM processed (kvm_eoi) and which of them the guest did not write.

    A guest's x2APIC EOI is a WRMSR 0x80B: KVM traces kvm_apic (APIC_EOI), kvm_eoi, then kvm_msr
    "msr_write 80b". An EOI without that WRMSR, or for a vector whose handler never writes EOI
    (the program's handler policy), was KVM's own doing.
    """
    own = [tp for tp in tracepoints if tp.get("own")]
    processed: list[int] = []
    not_from_guest: list[int] = []
    for i, tp in enumerate(own):
        if tp.get("event") != "kvm_eoi":
            continue
        vector = _eoi_vector(str(tp.get("message", "")))
        if vector is None:
            continue  # an EOI with nothing in service
        processed.append(vector)
        after = own[i + 1:i + 3]
        wrmsr = any(t.get("event") == "kvm_msr" and "msr_write 80b" in str(t.get("message"))
                    for t in after)
        by_policy = program.handler(vector).eoi
        if (program.mode == Mode.X2APIC_REAL and not wrmsr) or not by_policy:
            not_from_guest.append(vector)
    return {"kvm_eoi_vectors": processed, "eoi_not_written_by_guest": not_from_guest}


def deviation(host: Trace, model: Trace, *, host_lapic: Mapping[str, Any],
              tracepoints: Sequence[Mapping[str, Any]] | None, program: Program,
              trace_note: str | None = None) -> dict[str, Any] | None:
    """None when the guest saw the same events on both; else the evidence of the difference."""
    diff = trace_difference(host, model)
    if diff is None:
        return None
    host_outcome, model_outcome = outcome(host), outcome(model)
    evidence: dict[str, Any] = {
        "outcomes": {"host": host_outcome, "model": model_outcome},
        "first_difference": diff,
        "summary": summarize(diff, host_outcome, model_outcome),
        "host_lapic_at_end": dict(host_lapic),
    }
    if tracepoints is not None:
        evidence["tracepoints"] = _tracepoints_about(tracepoints, _vectors_in(diff))
        eois = eoi_origins(tracepoints, program)
        evidence["eois"] = eois
        if eois["eoi_not_written_by_guest"]:
            vectors = ", ".join(f"{v:#x}" for v in eois["eoi_not_written_by_guest"])
            evidence["summary"] += (f"; tracefs shows KVM EOI'd {vectors} without the guest "
                                    "writing EOI (kvm_eoi with no guest EOI write), i.e. as it "
                                    "injected the vector (docs/host.md)")
    elif trace_note:
        evidence["tracepoints_unavailable"] = trace_note
    return evidence


def summarize(diff: Mapping[str, Any], host_outcome: str, model_outcome: str) -> str:
    h, m = diff.get("host") or {}, diff.get("model") or {}
    prefix = (f"outcome differs (host {host_outcome}, model {model_outcome}); "
              if host_outcome != model_outcome else f"same outcome ({host_outcome}); ")
    if h.get("kind") == m.get("kind") == "interrupt":
        return (prefix + f"on entry to the handler of {h.get('vector', 0):#x} the guest read "
                f"ISR {_hexes(h.get('isr'))} PPR {h.get('ppr', 0):#04x} on the host, but "
                f"ISR {_hexes(m.get('isr'))} PPR {m.get('ppr', 0):#04x} in the model")
    return (prefix + f"event {diff['index']}: host {_describe(h)}, model {_describe(m)}")


def _hexes(vectors: Any) -> str:
    return "[" + ", ".join(f"{int(v):#x}" for v in (vectors or [])) + "]"


def _describe(event: Mapping[str, Any]) -> str:
    if not event:
        return "nothing"
    fields = ", ".join(f"{k}={v:#x}" if isinstance(v, int) and k in ("vector", "code", "ppr")
                       else f"{k}={v}" for k, v in event.items() if k != "kind")
    return f"{event.get('kind')}({fields})"
