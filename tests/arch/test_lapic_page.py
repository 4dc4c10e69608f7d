"""LocalApic.to_page / load_page / from_page: the register page in and out of the model."""

from __future__ import annotations

from apiclab.arch.lapic import LocalApic
from apiclab.arch.registers import Reg


def test_page_round_trip_keeps_registers_and_vector_banks() -> None:
    apic = LocalApic(0)
    apic.write(Reg.SVR, 0x1FF, 0)
    apic.write(Reg.TPR, 0x40, 0)
    apic.write(Reg.LVT_TIMER, 0x30, 0)
    apic.write(Reg.TIMER_DIVIDE, 0b1011, 0)
    apic.write(Reg.TIMER_INITIAL, 1000, 0)
    apic.irr, apic.isr, apic.tmr = 1 << 0xD1, 1 << 0xE1, 1 << 0x51
    page = apic.to_page(now=300)
    copy = LocalApic.from_page(page, now=300)
    assert (copy.irr, copy.isr, copy.tmr) == (apic.irr, apic.isr, apic.tmr)
    for reg in (Reg.SVR, Reg.TPR, Reg.LVT_TIMER, Reg.TIMER_DIVIDE, Reg.TIMER_INITIAL, Reg.PPR):
        assert copy.read(reg, 300) == apic.read(reg, 300), hex(reg)
    # the count continues from where the page says it stood: 300 ns at 1 count/ns elapsed
    assert copy.read(Reg.TIMER_CURRENT, 300) == apic.read(Reg.TIMER_CURRENT, 300) == 700
    assert copy.to_page(now=300).encode() == page.encode()


def test_load_page_drops_unimplemented_bits() -> None:
    page = LocalApic(0).to_page(now=0)
    page.set(Reg.SVR, 0xFFFFFFFF)
    page.set(Reg.TPR, 0x1FF)
    apic = LocalApic.from_page(page, now=0)
    assert apic.read(Reg.SVR, 0) == 0x13FF and apic.read(Reg.TPR, 0) == 0xFF
