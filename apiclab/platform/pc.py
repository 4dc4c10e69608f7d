"""Where a PC's devices answer: the port and memory addresses a guest programs, shared by the
machine that decodes them (`apiclab.hypervisor.machine`) and the guests that use them.
"""

from __future__ import annotations

RESET_PORT = 0xCF9  # PIIX/ICH reset control register; 0x06 = hard reset (CPU + system)
HPET_PIN = 2  # legacy replacement route of HPET timer 0 to IOAPIC input 2
# ISA IRQ0 (the PIT's OUT 0) reaches IOAPIC input 2: the MADT interrupt source override of every
# PC firmware, QEMU's kvm_pc_setup_irq_routing and ioapic_set_irq, Bochs' set_irq_level.
PIT_PIN = 2
IOAPIC_BASE = 0xFEC00000  # 82093AA §3.0: IOREGSEL at +0x00, IOWIN at +0x10
IOREGSEL = IOAPIC_BASE
IOWIN = IOAPIC_BASE + 0x10
HPET_BASE = 0xFED00000  # IA-PC HPET spec 1.0a §2.3 (the base the HPET ACPI table gives on a PC)
XAPIC_BASE = 0xFEE00000  # SDM §10.4.1
OPEN_BUS = 0xFFFFFFFF  # what a load from an address no device decodes returns on a PC
