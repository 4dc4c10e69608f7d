"""The fields of the kvm tracepoints the replay reads, as the kernel prints them
(/sys/kernel/tracing/events/kvm/*/format, Linux 6.x; `kvm_inj_virq` also in its older "irq %u"
form). Each parser returns None for text that does not fit, and is cached: a trace repeats the
same few messages a million times."""

from __future__ import annotations

import re
from functools import lru_cache

_ACCEPT = re.compile(r"^apicid ([0-9a-fA-F]+) vec (\d+) \((\w+)\|(edge|level)\)")
_EOI = re.compile(r"^apicid ([0-9a-fA-F]+) vector (-?\d+)")
_INJ = re.compile(r"^(IRQ|irq|Soft/INTn) (0x[0-9a-fA-F]+|\d+)( \[reinjected\])?")
_APIC = re.compile(r"^apic_(read|write) (\w+) = 0x([0-9a-fA-F]+)")

_APIC_REG_NAMES = {
    "APIC_ID": 0x20, "APIC_LVR": 0x30, "APIC_TASKPRI": 0x80, "APIC_ARBPRI": 0x90,
    "APIC_PROCPRI": 0xA0, "APIC_EOI": 0xB0, "APIC_RRR": 0xC0, "APIC_LDR": 0xD0, "APIC_DFR": 0xE0,
    "APIC_SPIV": 0xF0, "APIC_ISR": 0x100, "APIC_TMR": 0x180, "APIC_IRR": 0x200,
    "APIC_ESR": 0x280, "APIC_ICR": 0x300, "APIC_ICR2": 0x310, "APIC_LVTT": 0x320,
    "APIC_LVTTHMR": 0x330, "APIC_LVTPC": 0x340, "APIC_LVT0": 0x350, "APIC_LVT1": 0x360,
    "APIC_LVTERR": 0x370, "APIC_TMICT": 0x380, "APIC_TMCCT": 0x390, "APIC_TDCR": 0x3E0,
    "APIC_SELF_IPI": 0x3F0, "APIC_LVTCMCI": 0x2F0,
}


@lru_cache(maxsize=8192)
def accept_fields(msg: str) -> tuple[int, int, str, bool] | None:
    m = _ACCEPT.match(msg)
    return None if m is None else (int(m[1], 16), int(m[2]), m[3], m[4] == "level")


@lru_cache(maxsize=8192)
def eoi_fields(msg: str) -> tuple[int, int] | None:
    m = _EOI.match(msg)
    return None if m is None else (int(m[1], 16), int(m[2]))


@lru_cache(maxsize=8192)
def inj_fields(msg: str) -> int | None:
    """The injected vector; -1 for a software INTn or a re-injection (nothing new)."""
    m = _INJ.match(msg)
    if m is None:
        return None
    return -1 if m[1] == "Soft/INTn" or m[3] else int(m[2], 0)


@lru_cache(maxsize=8192)
def apic_fields(msg: str) -> tuple[bool, int, int] | None:
    """(write, register offset or -1 when unknown to the model, value)."""
    m = _APIC.match(msg)
    if m is None:
        return None
    reg = _APIC_REG_NAMES.get(m[2])
    if reg is None:
        try:
            reg = int(m[2], 16)
        except ValueError:
            reg = -1  # a register this kernel names that the model has no use for
    return m[1] == "write", reg, int(m[3], 16)
