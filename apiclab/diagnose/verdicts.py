"""Why each pending vector is or is not deliverable, by the local-APIC rules of `apiclab.arch`.

SDM vol. 3A (325384-059US): the APIC offers the highest IRR vector only when its priority class
is above PPR[7:4] (§10.8.3.1), PPR being the larger of TPR and the class of the highest
in-service vector (§10.8.3.1); a software-disabled APIC holds its interrupts (§10.4.7.2); the
processor takes the offered interrupt only with RFLAGS.IF = 1 and no STI / MOV SS blocking
(vol. 3A §6.8.1, §6.8.3). The PPR here is never the evidence's own: it is recomputed with
`LocalApic.ppr`, and a printed PPR that disagrees is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apiclab.arch.lapic import LocalApic
from apiclab.arch.registers import Reg
from apiclab.arch.vectors import highest, priority_class, vectors_of
from apiclab.diagnose.evidence import CpuEvidence, Evidence

# Reasons, as short stable words for --json; the text says the rest.
DELIVERABLE = "deliverable"
AFTER_HIGHER = "after-higher-pending"
IN_SERVICE = "in-service"
TPR = "tpr"
APIC_DISABLED = "apic-disabled"
IF_CLEAR = "if-clear"
SHADOW = "interrupt-shadow"

# Handler names that say the guest has no real handler there: nothing will EOI the vector.
_NO_HANDLER_WORDS = ("unexpected", "spurious", "unknown", "default")
_CLOCK_WORDS = ("clock", "timer", "hpet", "rtc")


@dataclass
class Pending:
    vector: int
    deliverable: bool
    reason: str
    blocking_vector: int | None
    detail: str
    since: float | None = None  # trace: the moment it became held off (pending and blocked)


@dataclass
class InService:
    vector: int
    handler: str | None
    since: float | None
    inferred: bool
    eoi_expected: str  # "no", "unknown", "yes"
    detail: str


@dataclass
class Waiting:
    vector: int
    source: str  # "lapic-timer", "hpet", ...
    detail: str


@dataclass
class CpuVerdict:
    evidence: CpuEvidence
    ppr: int
    pending: list[Pending]
    in_service: list[InService]
    waiting_for: list[Waiting]
    notes: list[str] = field(default_factory=list)

    @property
    def held_off(self) -> list[Pending]:
        return [p for p in self.pending if not p.deliverable]


def apic_of(cpu: CpuEvidence) -> LocalApic:
    """The evidence as an `arch` local APIC, so PPR and dispatch come from the one rule set."""
    apic = LocalApic(cpu.apic_id or 0)
    apic.tpr, apic.isr, apic.irr, apic.tmr = cpu.tpr & 0xFF, cpu.isr, cpu.irr, cpu.tmr
    # Unknown SVR: judge as enabled and say so (an OS that has interrupts in service has
    # enabled its APIC; §10.4.7.2 disabled APICs accept no fixed interrupts at all).
    apic.svr = 0x1FF if cpu.svr is None else cpu.svr
    return apic


def _since(cpu: CpuEvidence, vector: int) -> str:
    t = cpu.isr_since.get(vector)
    return "" if t is None else f" since {t:.6f} s"


def judge_pending(cpu: CpuEvidence, apic: LocalApic) -> list[Pending]:
    ppr = apic.ppr()
    isrv = max(highest(apic.isr), 0)
    first = apic.highest_priority_int()
    out = []
    for vector in sorted(vectors_of(apic.irr), reverse=True):
        cls = priority_class(vector)
        if cpu.apic_enabled is False:
            out.append(Pending(vector, False, APIC_DISABLED, None,
                               f"the APIC is software-disabled (SVR {cpu.svr:#x}, bit 8 clear): "
                               "it holds its interrupts (SDM §10.4.7.2)"))
        elif cls <= priority_class(ppr) and isrv and priority_class(isrv) >= cls:
            times = [t for t in (cpu.irr_since.get(vector), cpu.isr_since.get(isrv))
                     if t is not None]
            out.append(Pending(vector, False, IN_SERVICE, isrv,
                               f"{isrv:#04x} is in service{_since(cpu, isrv)} (class "
                               f"{priority_class(isrv):#x} >= {cls:#x}): PPR {ppr:#04x} holds "
                               f"class {cls:#x} until {isrv:#04x} is EOIed (SDM §10.8.3.1)",
                               max(times) if len(times) == 2 else None))
        elif cls <= priority_class(ppr):
            out.append(Pending(vector, False, TPR, None,
                               f"TPR {apic.tpr:#04x} masks class {cls:#x} and below "
                               "(SDM §10.8.3.1)"))
        elif cpu.shadow:
            out.append(Pending(vector, False, SHADOW, None,
                               "above PPR, but the CPU is in an interrupt shadow "
                               "(STI / MOV SS blocking, SDM vol. 3A §6.8.3) for one instruction"))
        elif cpu.if_flag is False:
            out.append(Pending(vector, False, IF_CLEAR, None,
                               "above PPR, but RFLAGS.IF = 0: the CPU takes no maskable "
                               "interrupt until STI (SDM vol. 3A §6.8.1)"))
        elif vector != first:
            out.append(Pending(vector, True, AFTER_HIGHER, None,
                               f"above PPR {ppr:#04x}; offered after {first:#04x}, the highest "
                               "pending vector, is dispatched (SDM §10.8.3.1)"))
        else:
            flag = "" if cpu.if_flag else "; RFLAGS.IF is not in this evidence"
            out.append(Pending(vector, True, DELIVERABLE, None,
                               f"class {cls:#x} is above PPR {ppr:#04x}: deliverable now{flag}"))
    return out


def _eoi_expected(cpu: CpuEvidence, vector: int, handler: str | None) -> tuple[str, str]:
    if handler and any(w in handler.lower() for w in _NO_HANDLER_WORDS):
        return "no", f"its IDT entry {handler} is not a real handler: no EOI will come"
    if vector in cpu.isr_since:
        return "no", "no EOI for it in the rest of the trace"
    if handler:
        return "unknown", f"handled by {handler}; a snapshot cannot show whether it will EOI"
    return "unknown", "a snapshot cannot show whether its handler will EOI"


def judge_in_service(cpu: CpuEvidence) -> list[InService]:
    out = []
    for vector in sorted(vectors_of(cpu.isr), reverse=True):
        handler = cpu.handlers.get(vector)
        eoi, why = _eoi_expected(cpu, vector, handler)
        how = " (inferred: the trace shows no injection)" if vector in cpu.inferred else ""
        out.append(InService(vector, handler, cpu.isr_since.get(vector), vector in cpu.inferred,
                             eoi, f"{why}{how}"))
    return out


def waiting_for(cpu: CpuEvidence) -> list[Waiting]:
    """Clock vectors the guest is recognisably waiting for: the LAPIC timer's, and those whose
    handler is named after a clock (`!idt`)."""
    out: list[Waiting] = []
    lvtt = cpu.lvt_entry(Reg.LVT_TIMER)
    if lvtt is not None and (lvtt & 0xFF) >= 16 and (cpu.timer_initial or lvtt >> 17 & 3 == 2):
        mode = ("one-shot", "periodic", "TSC-deadline", "reserved")[lvtt >> 17 & 3]
        masked = lvtt & 0x10000
        state = "masked: it raises nothing (SDM §10.5.1)" if masked else "armed"
        if not masked and mode == "one-shot" and cpu.timer_current == 0:
            state = "run out (current count 0): it has fired once and will not again"
        out.append(Waiting(lvtt & 0xFF, "lapic-timer",
                           f"LAPIC timer, {mode}, initial count {cpu.timer_initial or 0}: {state}"))
    for vector, what in sorted(cpu.clock_sources.items()):
        if all(w.vector != vector for w in out):
            out.append(Waiting(vector, "ioapic", what))
    for vector, name in sorted(cpu.handlers.items()):
        low = name.lower()
        if any(w in low for w in _CLOCK_WORDS) and "unexpected" not in low \
                and all(w.vector != vector for w in out):
            source = "hpet" if "hpet" in low else "rtc" if "rtc" in low else "clock"
            out.append(Waiting(vector, source, f"its handler is {name}"))
    return out


def judge_cpu(cpu: CpuEvidence) -> CpuVerdict:
    apic = apic_of(cpu)
    ppr = apic.ppr()
    notes = list(cpu.notes)
    if cpu.ppr_read is not None and cpu.ppr_read != ppr:
        notes.append(f"the evidence prints PPR {cpu.ppr_read:#04x}, the SDM rule gives "
                     f"{ppr:#04x} from TPR {cpu.tpr:#04x} and ISR (§10.8.3.1)")
    if cpu.svr is None:
        notes.append("the APIC's software-enable bit is not in this evidence: judged as enabled")
    return CpuVerdict(cpu, ppr, judge_pending(cpu, apic), judge_in_service(cpu), waiting_for(cpu),
                      notes)


def judge(evidence: Evidence) -> list[CpuVerdict]:
    return [judge_cpu(c) for c in evidence.cpus]
