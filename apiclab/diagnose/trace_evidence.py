"""A replayed kvm trace as evidence: the state each vCPU ends in, when its vectors got stuck,
and what a trace cannot show (`apiclab.diagnose.replay` does the replaying)."""

from __future__ import annotations

from apiclab.diagnose.evidence import CpuEvidence, Evidence
from apiclab.diagnose.replay import Replay, replay


def _notes(r: Replay) -> list[str]:
    notes = ["a trace does not show RFLAGS.IF or the interrupt shadow",
             "state set before the trace began (e.g. an image restored with KVM_SET_LAPIC) is "
             "not in it: the replay starts from a reset APIC"]
    if r.blind:
        notes.append("no injection events in this trace (kvm_inj_virq, kvm_entry intr_info): a "
                     "delivery shows only through the EOI or ISR read that follows it; a vector "
                     "taken and never EOIed nor read would still look pending here")
    if r.apicv:
        notes.append("APICv is active: the CPU delivers virtual interrupts and virtualizes "
                     "EOIs without exits (SDM vol. 3C §29.1.4, §29.2.2), so those deliveries and "
                     "EOIs are not in the trace; RVI and SVI are never traced")
    if len(r.tasks) > 1:
        names = ", ".join(t for t, _ in r.tasks.most_common(6))
        notes.append(f"interrupt events from {len(r.tasks)} tasks ({names}): the kvm tracepoints "
                     "are host-wide, so another VM's events may be mixed in; keep one VM's "
                     "threads with --pid")
    if not r.has_eoi_events:
        notes.append("no kvm_eoi events: EOIs are taken from APIC_EOI writes")
    return notes


def to_evidence(r: Replay) -> Evidence:
    cpus = []
    for cpu in sorted(r.vcpus):
        v = r.vcpus[cpu]
        apic = v.apic
        notes = list(v.notes)
        if v.corrections:
            notes.append(f"{v.corrections} time(s) the APIC's own registers (reads, EOIs) showed "
                         "a state the replayed events had not: the register values won")
        cpus.append(CpuEvidence(
            cpu=cpu, apic_id=apic.apic_id, tpr=apic.tpr, isr=apic.isr, irr=apic.irr,
            tmr=apic.tmr, svr=apic.svr if v.svr_known else None, lvt=dict(apic.lvt), timer_initial=apic.timer_initial,
            timer_divide=apic.timer_divide, isr_since=dict(v.isr_since),
            irr_since=dict(v.irr_since), inferred=set(v.inferred), notes=notes))
    facts: dict[str, object] = {"events": sum(r.counts.values()), "counts": dict(r.counts),
                                "resets": r.resets, "apicv": r.apicv,
                                "injections_seen": not r.blind}
    return Evidence("trace", cpus, _notes(r), trace=facts, end_time=r.end)


def parse(text: str, name: str, pids: set[int] | None = None) -> Evidence:
    return to_evidence(replay(text, name, pids))
