"""Known KVM bugs recognised in the evidence, from the catalogue of `apiclab.explore.catalogue`.

Each signature names a catalogue entry's commit and title, and the release that first shipped
the fix as the profiles record it (`apiclab.hypervisor.profiles`, each switch's `Source.kernel`),
never a release typed here. A signature is a pattern of the state, not proof: the text says what
matched and leaves the kernel version to the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiclab.arch.registers import Reg
from apiclab.arch.vectors import priority_class, vectors_of
from apiclab.diagnose.evidence import Evidence
from apiclab.diagnose.verdicts import IN_SERVICE, CpuVerdict
from apiclab.explore.catalogue import CATALOGUE, Entry
from apiclab.hypervisor.profiles import SWITCHES, Source


@dataclass
class Signature:
    commit: str
    title: str
    fixed_in: str
    symptom: str
    evidence: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"commit": self.commit, "title": self.title, "fixed_in": self.fixed_in,
                "symptom": self.symptom, "evidence": self.evidence}


def _sources() -> dict[str, Source]:
    return {s.introduced_by.commit: s.introduced_by for s in SWITCHES.values()}


def _entry(commit: str) -> Entry:
    """The catalogue entry whose commit (or last commit of a pair "a/b") is `commit`."""
    for entry in CATALOGUE:
        if entry.commit.split("/")[-1] == commit:
            return entry
    raise KeyError(commit)


def _signature(commit: str, evidence: list[str]) -> Signature | None:
    try:
        entry = _entry(commit)
    except KeyError:
        return None  # the catalogue no longer lists it
    source = _sources().get(commit)
    fixed_in = source.kernel if source else entry.fixed
    return Signature(commit, entry.title, fixed_in, entry.symptom, evidence)


def stale_in_service(verdicts: list[CpuVerdict], ev: Evidence) -> list[str]:
    """4114c27d450b's pattern: a vector in service of a class at least the clock's, holding the
    clock the guest waits for (or any pending vector, when no EOI will come for it) off."""
    found = []
    for v in verdicts:
        for p in v.pending:
            if p.reason != IN_SERVICE or p.blocking_vector is None:
                continue
            held = next((s for s in v.in_service if s.vector == p.blocking_vector), None)
            clock = [w for w in v.waiting_for if w.vector == p.vector]
            # A handler in progress also holds lower vectors off; the bug's mark is a clock the
            # guest waits for held behind it, or a vector nothing will EOI.
            if held is None or held.eoi_expected == "yes" or (
                    not clock and held.eoi_expected != "no"):
                continue
            what = f"the clock vector {p.vector:#04x} ({clock[0].source})" if clock \
                else f"{p.vector:#04x}"
            line = (f"cpu {v.evidence.cpu}: {what} pending, held off by {p.blocking_vector:#04x} "
                    f"in service (class {priority_class(p.blocking_vector):#x} >= "
                    f"{priority_class(p.vector):#x}); EOI: {held.detail}")
            resets = [r for r in _resets(ev) if r.get("cpu") == v.evidence.cpu]
            if resets:
                line += (f"; after the reset at {resets[-1]['time']:.6f} s the vector went into "
                         "service with no acceptance of it after the reset")
            found.append(line)
    return found


def _resets(ev: Evidence) -> list[dict[str, object]]:
    resets = ev.trace.get("resets") if ev.trace else None
    return list(resets) if isinstance(resets, list) else []


def timer_lost(verdicts: list[CpuVerdict]) -> list[str]:
    """9cfec6d097c6's pattern: a one-shot LAPIC timer that has run out (initial count set,
    current count 0, unmasked) whose vector is neither pending nor in service, while the guest
    waits (halted or not)."""
    found = []
    for v in verdicts:
        c = v.evidence
        lvtt = c.lvt_entry(Reg.LVT_TIMER)
        if lvtt is None or lvtt & 0x10000 or (lvtt >> 17) & 3 != 0:
            continue
        vector = lvtt & 0xFF
        if not c.timer_initial or c.timer_current != 0 or vector < 16:
            continue
        if vector in vectors_of(c.irr) or vector in vectors_of(c.isr):
            continue
        found.append(f"cpu {c.cpu}: one-shot LAPIC timer {vector:#04x} has run out (initial "
                     f"count {c.timer_initial}, current 0) yet {vector:#04x} is neither pending "
                     "nor in service: its interrupt was lost (or handled and not re-armed)")
    return found


def match(verdicts: list[CpuVerdict], ev: Evidence) -> list[Signature]:
    found: list[Signature | None] = []
    stale = stale_in_service(verdicts, ev)
    if stale:
        found.append(_signature("4114c27d450b", stale))
        posted = ev.trace.get("apicv") if ev.trace else False
        if posted and _resets(ev):
            found.append(_signature("967235d32032", [
                *stale, "APICv posting is in this trace: an interrupt posted while the vCPU was "
                "outside the guest at the reset can survive KVM_SET_LAPIC in the PIR"]))
    lost = timer_lost(verdicts)
    if lost:
        found.append(_signature("9cfec6d097c6", lost))
    return [s for s in found if s is not None]
