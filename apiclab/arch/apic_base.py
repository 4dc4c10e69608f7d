"""IA32_APIC_BASE (MSR 0x1B) and the local APIC's modes, as the SDM defines them.

SDM vol. 3A (325384-059US) §10.4.4 Figure 10-5 and §10.12.1 Figure 10-26: bit 8 BSP, bit 10 EXTD
(x2APIC enable), bit 11 EN (APIC global enable), bits 12 up to MAXPHYADDR-1 the APIC page base;
bits 0-7, 9 and MAXPHYADDR-63 are reserved. §10.12.5 Figure 10-27 gives the legal mode
transitions; a WRMSR that asks for any other raises #GP, as does one that sets a reserved bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from apiclab.arch.lapic import GeneralProtection
from apiclab.arch.registers import APIC_BASE_DEFAULT

BSP: Final = 1 << 8
EXTD: Final = 1 << 10
EN: Final = 1 << 11
# The model's MAXPHYADDR: QEMU's qemu64 CPU reports 40 bits; cases only rely on bits 63:52, which
# are reserved for every MAXPHYADDR the architecture allows (at most 52, SDM vol. 1 §3.3.1).
MAXPHYADDR: Final = 40


class ApicMode(Enum):
    """§10.12.5: the four (EN, EXTD) combinations; INVALID is never entered."""

    DISABLED = (0, 0)
    INVALID = (0, 1)
    XAPIC = (1, 0)
    X2APIC = (1, 1)

    @classmethod
    def of(cls, value: int) -> ApicMode:
        return cls((int(bool(value & EN)), int(bool(value & EXTD))))


def reserved_mask(maxphyaddr: int = MAXPHYADDR) -> int:
    """Bits a WRMSR of IA32_APIC_BASE must leave clear (§10.4.4 Figure 10-5)."""
    return 0xFF | (1 << 9) | (((1 << 64) - 1) & ~((1 << maxphyaddr) - 1))


def page_base(value: int, maxphyaddr: int = MAXPHYADDR) -> int:
    """Where the xAPIC register page is decoded: bits MAXPHYADDR-1:12 of IA32_APIC_BASE (§10.4.4
    Figure 10-5; relocation by writing them, §10.4.5)."""
    return value & ((1 << maxphyaddr) - 1) & ~0xFFF


def reset_value(bsp: bool = True) -> int:
    """After RESET the APIC is enabled in xAPIC mode at the default base (§10.4.4)."""
    return APIC_BASE_DEFAULT | EN | (BSP if bsp else 0)


@dataclass(frozen=True, slots=True)
class Transition:
    old: ApicMode
    new: ApicMode

    @property
    def disables(self) -> bool:
        return self.new is ApicMode.DISABLED and self.old is not ApicMode.DISABLED

    @property
    def enables(self) -> bool:
        return self.old is ApicMode.DISABLED and self.new is not ApicMode.DISABLED


# §10.12.5 Figure 10-27: x2APIC → xAPIC must go through disabled, disabled → x2APIC through xAPIC,
# and (EN=0, EXTD=1) is an invalid state; WRMSR attempting any of these raises #GP.
_ILLEGAL = {
    (ApicMode.X2APIC, ApicMode.XAPIC),
    (ApicMode.DISABLED, ApicMode.X2APIC),
}


def check_write(old: int, new: int, maxphyaddr: int = MAXPHYADDR) -> Transition:
    """The mode transition a WRMSR of `new` over `old` makes; GeneralProtection if illegal."""
    if new & reserved_mask(maxphyaddr):
        raise GeneralProtection(f"IA32_APIC_BASE {new:#x} sets reserved bits")
    before, after = ApicMode.of(old), ApicMode.of(new)
    if after is ApicMode.INVALID:
        raise GeneralProtection("IA32_APIC_BASE: EXTD without EN is an invalid state (§10.12.5)")
    if (before, after) in _ILLEGAL:
        raise GeneralProtection(f"IA32_APIC_BASE: {before.name} → {after.name} is not a legal "
                                "transition (§10.12.5 Figure 10-27)")
    return Transition(before, after)
