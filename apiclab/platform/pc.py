"""Where a PC's devices answer: the port and memory addresses a guest programs, shared by the
machine that decodes them (`apiclab.hypervisor.machine`) and the guests that use them.
"""

from __future__ import annotations

from typing import Final

RESET_PORT: Final = 0xCF9  # PIIX/ICH reset control register; 0x06 = hard reset (CPU + system)
HPET_PIN: Final = 2  # legacy replacement route of HPET timer 0 to IOAPIC input 2
# ISA IRQ0 (the PIT's OUT 0) reaches IOAPIC input 2: the MADT interrupt source override of every
# PC firmware, QEMU's kvm_pc_setup_irq_routing and ioapic_set_irq, Bochs' set_irq_level.
PIT_PIN: Final = 2
IOAPIC_BASE: Final = 0xFEC00000  # 82093AA §3.0: IOREGSEL at +0x00, IOWIN at +0x10
IOREGSEL: Final = IOAPIC_BASE
IOWIN: Final = IOAPIC_BASE + 0x10
HPET_BASE: Final = 0xFED00000  # IA-PC HPET spec 1.0a §2.3 (the base the HPET ACPI table gives on a PC)
XAPIC_BASE: Final = 0xFEE00000  # SDM §10.4.1
OPEN_BUS: Final = 0xFFFFFFFF  # what a load from an address no device decodes returns on a PC
# QEMU's pc-testdev (hw/misc/pc-testdev.c), as kvm-unit-tests x86/ioapic.c uses it: a byte written
# to port TESTDEV_IRQ + n drives ISA interrupt line n (0-15) to that level (non-zero = asserted).
TESTDEV_IRQ: Final = 0x2000
TESTDEV_LINES: Final = 16


def testdev_line(port: int) -> int | None:
    """The ISA line a pc-testdev port drives, or None for any other port."""
    line = port - TESTDEV_IRQ
    return line if 0 <= line < TESTDEV_LINES else None
