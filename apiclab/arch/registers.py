"""Local APIC register offsets and their x2APIC MSR numbers.

SDM vol. 3A (325384-059US) §10.4.1 Table 10-1 "Local APIC Register Address Map" gives the xAPIC
offsets; §10.12.1.2 Table 10-6 gives the x2APIC MSR of each: MSR = 0x800 + (offset >> 4), with ICR
as one 64-bit MSR 0x830 and the self-IPI register only in x2APIC (MSR 0x83F).
"""

from __future__ import annotations

from typing import Final

APIC_BASE_DEFAULT: Final = 0xFEE00000  # §10.4.1: default physical base of the xAPIC page
IA32_APIC_BASE: Final = 0x1B  # §10.4.4: bit 11 global enable, bit 10 x2APIC enable (§10.12.1)
IA32_TSC_DEADLINE: Final = 0x6E0  # §10.5.4.1
X2APIC_MSR_BASE: Final = 0x800


class Reg:
    """xAPIC register offsets (SDM Table 10-1), as plain ints: the APIC's rules compare offsets
    with them on every register access, and compiled code (`apiclab.native`) reads a `Final`
    class constant as the number itself, where an IntEnum member is a look-up through the enum's
    metaclass and a generic comparison (~0.1 µs each)."""

    ID: Final = 0x20
    VERSION: Final = 0x30
    TPR: Final = 0x80
    APR: Final = 0x90
    PPR: Final = 0xA0
    EOI: Final = 0xB0
    RRD: Final = 0xC0
    LDR: Final = 0xD0
    DFR: Final = 0xE0
    SVR: Final = 0xF0
    ISR0: Final = 0x100
    TMR0: Final = 0x180
    IRR0: Final = 0x200
    ESR: Final = 0x280
    LVT_CMCI: Final = 0x2F0
    ICR_LOW: Final = 0x300
    ICR_HIGH: Final = 0x310
    LVT_TIMER: Final = 0x320
    LVT_THERMAL: Final = 0x330
    LVT_PERF: Final = 0x340
    LVT_LINT0: Final = 0x350
    LVT_LINT1: Final = 0x360
    LVT_ERROR: Final = 0x370
    TIMER_INITIAL: Final = 0x380
    TIMER_CURRENT: Final = 0x390
    TIMER_DIVIDE: Final = 0x3E0
    SELF_IPI: Final = 0x3F0  # x2APIC only (MSR 0x83F), §10.12.11


LVT_REGS = (
    Reg.LVT_CMCI,
    Reg.LVT_TIMER,
    Reg.LVT_THERMAL,
    Reg.LVT_PERF,
    Reg.LVT_LINT0,
    Reg.LVT_LINT1,
    Reg.LVT_ERROR,
)

# offset → name of every register `Reg` names
REG_NAMES: dict[int, str] = {
    value: name for name, value in vars(Reg).items() if name.isupper() and isinstance(value, int)
}

# Lower-case names accepted in user files (scenario and conformance TOML).
REG_BY_NAME: dict[str, int] = {name.lower(): offset for offset, name in REG_NAMES.items()}
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
    known = REG_NAMES.get(offset)
    return known.lower() if known is not None else f"reg{offset:#x}"
