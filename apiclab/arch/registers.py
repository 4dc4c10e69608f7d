"""Local APIC register offsets and their x2APIC MSR numbers.

SDM vol. 3A (325384-059US) §10.4.1 Table 10-1 "Local APIC Register Address Map" gives the xAPIC
offsets; §10.12.1.2 Table 10-6 gives the x2APIC MSR of each: MSR = 0x800 + (offset >> 4), with ICR
as one 64-bit MSR 0x830 and the self-IPI register only in x2APIC (MSR 0x83F).
"""

from __future__ import annotations

from enum import IntEnum

APIC_BASE_DEFAULT = 0xFEE00000  # §10.4.1: default physical base of the xAPIC page
IA32_APIC_BASE = 0x1B  # §10.4.4: bit 11 global enable, bit 10 x2APIC enable (§10.12.1)
IA32_TSC_DEADLINE = 0x6E0  # §10.5.4.1
X2APIC_MSR_BASE = 0x800


class Reg(IntEnum):
    """xAPIC register offsets (SDM Table 10-1)."""

    ID = 0x20
    VERSION = 0x30
    TPR = 0x80
    APR = 0x90
    PPR = 0xA0
    EOI = 0xB0
    RRD = 0xC0
    LDR = 0xD0
    DFR = 0xE0
    SVR = 0xF0
    ISR0 = 0x100
    TMR0 = 0x180
    IRR0 = 0x200
    ESR = 0x280
    LVT_CMCI = 0x2F0
    ICR_LOW = 0x300
    ICR_HIGH = 0x310
    LVT_TIMER = 0x320
    LVT_THERMAL = 0x330
    LVT_PERF = 0x340
    LVT_LINT0 = 0x350
    LVT_LINT1 = 0x360
    LVT_ERROR = 0x370
    TIMER_INITIAL = 0x380
    TIMER_CURRENT = 0x390
    TIMER_DIVIDE = 0x3E0
    SELF_IPI = 0x3F0  # x2APIC only (MSR 0x83F), §10.12.11


LVT_REGS = (
    Reg.LVT_CMCI,
    Reg.LVT_TIMER,
    Reg.LVT_THERMAL,
    Reg.LVT_PERF,
    Reg.LVT_LINT0,
    Reg.LVT_LINT1,
    Reg.LVT_ERROR,
)

# Lower-case names accepted in user files (scenario and conformance TOML).
REG_BY_NAME: dict[str, int] = {r.name.lower(): int(r) for r in Reg}
REG_BY_NAME.update({"icr": int(Reg.ICR_LOW), "timer_icr": int(Reg.TIMER_INITIAL)})
for _i in range(8):
    REG_BY_NAME[f"isr{_i}"] = 0x100 + 0x10 * _i
    REG_BY_NAME[f"tmr{_i}"] = 0x180 + 0x10 * _i
    REG_BY_NAME[f"irr{_i}"] = 0x200 + 0x10 * _i


def msr_of(offset: int) -> int:
    """x2APIC MSR number of an xAPIC register offset (SDM §10.12.1.2)."""
    return X2APIC_MSR_BASE + (offset >> 4)


def is_x2apic_msr(msr: int) -> bool:
    """Whether `msr` is in the range the SDM reserves for the x2APIC registers, 0x800-0x8FF
    (§10.12.1.2)."""
    return X2APIC_MSR_BASE <= msr <= 0x8FF


def offset_of_msr(msr: int) -> int:
    """xAPIC offset of an x2APIC MSR (inverse of `msr_of`)."""
    if not is_x2apic_msr(msr):
        raise ValueError(f"MSR {msr:#x} is not in the x2APIC range 0x800-0x8ff")
    return (msr - X2APIC_MSR_BASE) << 4


def reg_name(offset: int) -> str:
    """A readable name for a register offset, e.g. 'tpr', 'isr7', 'irr0'."""
    for base, name in ((0x100, "isr"), (0x180, "tmr"), (0x200, "irr")):
        if base <= offset < base + 0x80 and offset % 0x10 == 0:
            return f"{name}{(offset - base) >> 4}"
    try:
        return Reg(offset).name.lower()
    except ValueError:
        return f"reg{offset:#x}"
