"""The model machine's port I/O and MMIO: the PIT on ports 0x40-0x43 driving IOAPIC input 2, the
IOAPIC register window at 0xFEC00000, the xAPIC page, and open bus elsewhere."""

from __future__ import annotations

from apiclab.arch.ioapic import RTE_REMOTE_IRR
from apiclab.engine.trace import Trace
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import get_profile
from apiclab.platform.pc import IOAPIC_BASE, OPEN_BUS, PIT_PIN, XAPIC_BASE


def machine() -> ModelVm:
    m = ModelVm(get_profile("kvm-6.14"), apicv=False, tsc_hz=2_000_000_000, trace=Trace())
    m.vcpu.lapic.x2apic = False
    return m


def ioapic_write(m: ModelVm, index: int, value: int) -> None:
    m.mmio_write(IOAPIC_BASE, index)
    m.mmio_write(IOAPIC_BASE + 0x10, value)


def test_ioapic_window_reads_the_version_and_a_written_entry() -> None:
    m = machine()
    m.mmio_write(IOAPIC_BASE, 0x01)
    assert m.mmio_read(IOAPIC_BASE) == 0x01
    assert m.mmio_read(IOAPIC_BASE + 0x10) & 0xFF == 0x11
    ioapic_write(m, 0x10 + 2 * PIT_PIN, 0x1A050)
    assert m.mmio_read(IOAPIC_BASE + 0x10) == 0x1A050


def test_pit_terminal_count_raises_ioapic_input_2_and_keeps_it_high() -> None:
    m = machine()
    m.io_out(0x43, 0x30)
    m.io_out(0x40, 0x00)
    m.io_out(0x40, 0x01)  # 256 counts: about 215 us
    m.engine.run(until=1_000_000)
    assert m.ioapic.line[PIT_PIN] and m.pit.counters[0].out
    m.io_out(0x40, 0x00)  # first byte of a new count: OUT low at once
    assert not m.ioapic.line[PIT_PIN]


def test_level_entry_delivers_and_sets_remote_irr_from_the_pit() -> None:
    m = machine()
    m.vcpu.apic_write(0xF0, 0x1FF)
    ioapic_write(m, 0x10 + 2 * PIT_PIN, 0xA050)  # vector 0x50, level, active high
    m.io_out(0x43, 0x30)
    m.io_out(0x40, 0x10)
    m.io_out(0x40, 0x00)
    m.engine.run(until=1_000_000)
    assert m.ioapic.redirection[PIT_PIN] & RTE_REMOTE_IRR
    assert m.vcpu.lapic.irr >> 0x50 & 1 and m.vcpu.lapic.tmr >> 0x50 & 1


def test_xapic_page_through_mmio_and_open_bus_elsewhere() -> None:
    m = machine()
    m.mmio_write(XAPIC_BASE + 0x80, 0x20)  # TPR
    assert m.mmio_read(XAPIC_BASE + 0x80) == 0x20 and m.vcpu.apic_read(0x80) == 0x20
    assert m.mmio_read(0xFED40000) == OPEN_BUS  # no device decodes it (the HPET is at 0xFED00000)
    assert m.io_in(0x61) == 0xFF and m.io_in(0x41) in range(256)
