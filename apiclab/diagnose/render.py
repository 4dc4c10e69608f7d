"""The diagnosis as text for people and as JSON for programs (keys stable, extra keys welcome)."""

from __future__ import annotations

from typing import Any

from apiclab.arch.vectors import vectors_of
from apiclab.diagnose.evidence import Evidence
from apiclab.diagnose.signatures import Signature
from apiclab.diagnose.verdicts import CpuVerdict


def _hex(vectors: list[int]) -> str:
    return "{" + ", ".join(f"{v:#04x}" for v in vectors) + "}" if vectors else "{}"


def _opt(value: bool | None) -> str:
    return "unknown" if value is None else str(int(value))


def cpu_json(v: CpuVerdict) -> dict[str, Any]:
    c = v.evidence
    return {
        "cpu": c.cpu, "apic_id": c.apic_id, "tpr": c.tpr, "ppr": v.ppr,
        "isr": vectors_of(c.isr), "irr": vectors_of(c.irr), "tmr": vectors_of(c.tmr),
        "svr": c.svr, "apic_enabled": c.apic_enabled, "if": c.if_flag,
        "interrupt_shadow": c.shadow, "halted": c.halted, "x2apic": c.x2apic,
        "pending": [{"vector": p.vector, "deliverable": p.deliverable, "reason": p.reason,
                     "blocking_vector": p.blocking_vector, "since": p.since, "detail": p.detail}
                    for p in v.pending],
        "in_service": [{"vector": s.vector, "handler": s.handler, "since": s.since,
                        "inferred": s.inferred, "eoi_expected": s.eoi_expected,
                        "detail": s.detail} for s in v.in_service],
        "waiting_for": [{"vector": w.vector, "source": w.source, "detail": w.detail}
                        for w in v.waiting_for],
        "notes": v.notes,
    }


def to_json(ev: Evidence, verdicts: list[CpuVerdict], sigs: list[Signature]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "source": ev.source,
        "held_off": any(v.held_off for v in verdicts),
        "cpus": [cpu_json(v) for v in verdicts],
        "signatures": [s.as_dict() for s in sigs],
        "notes": ev.notes,
    }
    if ev.machine:
        doc["machine"] = ev.machine
    if ev.trace:
        doc["trace"] = {**ev.trace, "end_time": ev.end_time}
    return doc


def text(ev: Evidence, verdicts: list[CpuVerdict], sigs: list[Signature]) -> str:
    out = [f"evidence: {ev.source}"]
    for key, value in ev.machine.items():
        out.append(f"  {key}: {value}")
    if ev.trace:
        out.append(f"  {ev.trace.get('events')} trace events, last at {ev.end_time:.6f} s")
    for v in verdicts:
        c = v.evidence
        out.append("")
        ident = "" if c.apic_id is None else f" (APIC ID {c.apic_id})"
        out.append(f"cpu {c.cpu}{ident}: TPR {c.tpr:#04x}  PPR {v.ppr:#04x}  "
                   f"ISR {_hex(vectors_of(c.isr))}  IRR {_hex(vectors_of(c.irr))}  "
                   f"APIC enabled {_opt(c.apic_enabled)}  IF {_opt(c.if_flag)}  "
                   f"shadow {_opt(c.shadow)}")
        if not v.pending:
            out.append("  nothing pending")
        for p in v.pending:
            verdict = "deliverable" if p.deliverable else "HELD OFF"
            since = "" if p.since is None else f" (stuck since {p.since:.6f} s)"
            out.append(f"  pending {p.vector:#04x}: {verdict}{since} — {p.detail}")
        for s in v.in_service:
            name = f" [{s.handler}]" if s.handler else ""
            since = "" if s.since is None else f" since {s.since:.6f} s"
            out.append(f"  in service {s.vector:#04x}{name}{since} — {s.detail}")
        for w in v.waiting_for:
            out.append(f"  waits for {w.vector:#04x} — {w.detail}")
        for note in v.notes:
            out.append(f"  note: {note}")
    out.append("")
    if sigs:
        out.append("known-bug signatures")
        for sig in sigs:
            out.append(f"  {sig.commit} \"{sig.title}\" (fixed in {sig.fixed_in})")
            out.append(f"    symptom: {sig.symptom}")
            for line in sig.evidence:
                out.append(f"    matched: {line}")
    else:
        out.append("known-bug signatures: none matched")
    if ev.notes:
        out.append("")
        out.append("what this evidence cannot show")
        for note in ev.notes:
            out.append(f"  - {note}")
    return "\n".join(out)
