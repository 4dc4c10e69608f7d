"""A Linux guest's early boot, for contrast with Windows 7 on the same stale RVI.

Linux clears stale in-service vectors when it sets up the local APIC: `apic_pending_intr_clear()`
in `arch/x86/kernel/apic/apic.c` reads the ISR and writes EOI until it is empty (its comment
describes a vector locked in service after a crash). Then `check_timer()` / `timer_irq_works()`
enables interrupts and waits about ten ticks for jiffies to move; if the timer never ticks it
panics with "IO-APIC + timer doesn't work!". The timer is IRQ0 through IOAPIC input 2 at vector
0x30 (ISA_IRQ_VECTOR(0)), priority class 3 — below every stale device or IPI vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from apiclab.arch.registers import Reg
from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.core import Process, Wait
from apiclab.guest.hal import set_ioapic_entry, start_hpet_periodic
from apiclab.guest.platform import GuestPlatform
from apiclab.guest.windows7 import BootOutcome, Windows7, Windows7Config
from apiclab.platform.pc import HPET_PIN

PANIC_TEXT = "IO-APIC + timer doesn't work!"
MAX_EOI_LOOPS: Final = 512  # apic_pending_intr_clear bounds its loop (max_loops)


@dataclass(frozen=True)
class LinuxConfig:
    timer_vector: int = 0x30
    tick_ns: int = 1_000_000  # HZ = 1000
    clear_pending_intr: bool = True  # apic_pending_intr_clear(); False to see Windows' fate


class Linux(Windows7):
    """Runs like Windows in the OS and firmware phases (same traffic, same firmware); only its
    APIC setup and timer check differ."""

    def __init__(self, machine: GuestPlatform, config: LinuxConfig) -> None:
        super().__init__(machine, Windows7Config(clock_vector=config.timer_vector))
        self.lcfg = config

    def _phase0_idt(self, vector: int) -> None:
        if vector == self.lcfg.timer_vector:
            self.phase0_ticks += 1
        self.m.vcpu.apic_write(Reg.EOI, 0)  # Linux's handlers all ack the APIC

    def _pending_intr_clear(self) -> None:
        vcpu = self.m.vcpu
        for _ in range(MAX_EOI_LOOPS):
            if not any(vcpu.apic_read(Reg.ISR0 + 0x10 * i) for i in range(8)):
                return
            vcpu.apic_write(Reg.EOI, 0)

    def boot(self, choices: Choices, outcome: BootOutcome) -> Process:
        m, vcpu = self.m, self.m.vcpu
        yield from self.firmware_and_loader(choices)
        self.phase0_ticks = 0
        vcpu.idt = self._phase0_idt
        if self.lcfg.clear_pending_intr:
            self._pending_intr_clear()
        vcpu.apic_write(Reg.SVR, 0x1FF)
        vcpu.apic_write(Reg.TPR, 0)
        set_ioapic_entry(m, HPET_PIN, self.lcfg.timer_vector)
        start_hpet_periodic(m, self.lcfg.tick_ns)
        vcpu.sti()
        deadline = m.engine.now + 10 * self.lcfg.tick_ns  # mdelay(10 * 1000 / HZ)
        vcpu.record(
            ev.WaitStart, text="timer_irq_works(): ~10 ticks for jiffies to move",
            ticks=m.tsc.read(deadline) - vcpu.rdtsc(),
        )
        while m.engine.now < deadline:
            yield Wait(vcpu.delivered, deadline)
        outcome.ticks = self.phase0_ticks
        if self.phase0_ticks > 4:
            m.trace.record(m.engine.now, ev.ClockOk, ticks=self.phase0_ticks)
            outcome.ok = True
            return
        outcome.ok = False
        vcpu.record(ev.Panic, text=PANIC_TEXT)
        vcpu.cli()  # after the record, as Windows' bugcheck: the failure is the panic itself
