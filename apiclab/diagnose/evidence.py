"""What a diagnosis reads: the local-APIC state of each vCPU and what is known around it.

Every parser fills these, so the verdicts are computed one way whatever the input was. A field
left `None` is one the evidence does not show (e.g. `!apic` prints no SVR enable bit, a
`kvm_lapic_state` image has no RFLAGS); the verdicts say so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CpuEvidence:
    """One vCPU's local APIC (vector sets as 256-bit ints) and its interrupt flag."""

    cpu: int
    apic_id: int | None = None
    tpr: int = 0
    isr: int = 0
    irr: int = 0
    tmr: int = 0
    svr: int | None = None  # None: the evidence does not show the software-enable bit
    ppr_read: int | None = None  # PPR as the evidence printed it (checked against the rule)
    lvt: dict[int, int] = field(default_factory=dict)  # Reg.LVT_* -> entry, where shown
    timer_initial: int | None = None
    timer_current: int | None = None
    timer_divide: int | None = None
    if_flag: bool | None = None  # RFLAGS.IF
    shadow: bool | None = None  # STI / MOV SS blocking (QEMU's "II")
    halted: bool | None = None
    x2apic: bool | None = None
    handlers: dict[int, str] = field(default_factory=dict)  # vector -> handler (from !idt)
    clock_sources: dict[int, str] = field(default_factory=dict)  # vector -> e.g. IOAPIC pin 2
    # From a trace replay: when each vector entered the ISR / the IRR (seconds, trace clock),
    # and the EOIs seen for each vector.
    isr_since: dict[int, float] = field(default_factory=dict)
    irr_since: dict[int, float] = field(default_factory=dict)
    inferred: set[int] = field(default_factory=set)  # ISR bits set by inference, not seen
    notes: list[str] = field(default_factory=list)

    @property
    def apic_enabled(self) -> bool | None:
        return None if self.svr is None else bool(self.svr & 0x100)

    def lvt_entry(self, reg: int) -> int | None:
        return self.lvt.get(int(reg))


@dataclass
class Evidence:
    """Everything one input gave: its kind, the vCPUs and what the input cannot show."""

    source: str  # "kvm_lapic_state", "qemu-info-lapic", "windbg-apic", "trace", "qmp"
    cpus: list[CpuEvidence]
    notes: list[str] = field(default_factory=list)
    machine: dict[str, object] = field(default_factory=dict)  # accelerator, irqchip, IOAPIC...
    # A trace replay's own facts, read by the signatures (resets seen, APICv, events counted).
    trace: dict[str, object] = field(default_factory=dict)
    end_time: float | None = None
