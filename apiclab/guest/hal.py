"""Device programming as a guest's HAL does it: register writes through MMIO, nothing else.

The two sequences the guest models need: an IOAPIC redirection entry (82093AA §3.2.4, written
high dword first so the entry is unmasked only once complete) and HPET timer 0 as a periodic
legacy-replacement clock (IA-PC HPET spec 1.0a §2.3.9.2.2: timer configuration with
Tn_VAL_SET_CNF, the comparator as the period, then the general configuration's enable).
"""

from __future__ import annotations

from apiclab.guest.platform import GuestPlatform
from apiclab.platform.hpet import (
    ENABLE_CNF,
    GENERAL_CONFIG,
    LEG_RT_CNF,
    NS_PER_TICK,
    TIMER0_COMPARATOR,
    TIMER0_CONFIG,
    TN_INT_ENB_CNF,
    TN_TYPE_CNF,
    TN_VAL_SET_CNF,
)
from apiclab.platform.pc import HPET_BASE, IOREGSEL, IOWIN


def set_ioapic_entry(m: GuestPlatform, pin: int, entry: int) -> None:
    """Program IOAPIC redirection entry `pin` with the 64-bit `entry`."""
    m.mmio_write(IOREGSEL, 0x10 + 2 * pin + 1)
    m.mmio_write(IOWIN, entry >> 32)
    m.mmio_write(IOREGSEL, 0x10 + 2 * pin)
    m.mmio_write(IOWIN, entry & 0xFFFFFFFF)


def start_hpet_periodic(m: GuestPlatform, period_ns: int) -> None:
    """Run HPET timer 0 periodically every `period_ns`, routed as the legacy IRQ0 replacement."""
    m.mmio_write(HPET_BASE + TIMER0_CONFIG, TN_INT_ENB_CNF | TN_TYPE_CNF | TN_VAL_SET_CNF)
    m.mmio_write(HPET_BASE + TIMER0_COMPARATOR, period_ns // NS_PER_TICK)
    m.mmio_write(HPET_BASE + GENERAL_CONFIG, ENABLE_CNF | LEG_RT_CNF)
