"""Windows 7 x64 around a reboot, as far as interrupts are concerned.

What the model relies on (the seed analysis; docs/design.md §4 tells the failure step by step):
- running Windows takes its clock at vector 0xD1, IPIs at 0xE1 and device interrupts below;
- its shutdown path disables interrupts and then writes the reset port, so interrupts arriving in
  between stay pending (in IRR/PIR, and in RVI);
- at boot the firmware (SeaBIOS) software-enables the local APIC (smp_scan), then enables
  interrupts while it waits; a vector it does not know goes to a default handler that IRETs
  without a local-APIC EOI, so that vector stays in service;
- phase-0 HAL init (`hal!HalpInitializeClock`) enables the APIC, programs the clock source,
  enables interrupts and calls `HalpWaitForPhase0ClockTick(3000)`; only the clock stub
  (`HalpHpetClockInterruptStub`) EOIs in the early-boot IDT; with no tick by the TSC deadline it
  calls `KeBugCheckEx(0x5C, 0x10B, HalpClockSource, 0, 0)`.
Timing ranges are assumptions of the model (marked below), chosen to be plausible, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from apiclab.arch.registers import Reg
from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.core import Process, Sleep, Wait
from apiclab.guest.hal import set_ioapic_entry, start_hpet_periodic
from apiclab.guest.platform import GuestPlatform
from apiclab.platform.pc import HPET_PIN, RESET_PORT

MS: Final = 1_000_000
HAL_INITIALIZATION_FAILED: Final = 0x5C
HAL_CLOCK_INTERRUPT_NOT_RECEIVED: Final = 0x10B
DIV_1000_MAGIC: Final = 0x624DD2F1A9FBE77
U64: Final = (1 << 64) - 1


def div1000(x: int) -> int:
    """x // 1000 the way the HAL's compiled code does it for a u64 x: multiply-high by
    0x624DD2F1A9FBE77, then the subtract/shift-by-1 fix-up, then a shift by 9 (seed analysis)."""
    x &= U64
    high = (x * DIV_1000_MAGIC) >> 64
    return (high + ((x - high) >> 1)) >> 9


def phase0_deadline(tsc_now: int, tsc_hz: int, wait_ms: int) -> int:
    """`HalpWaitForPhase0ClockTick(wait_ms)`'s deadline: RDTSC + HalpProc0TSCHz * ms / 1000."""
    return (div1000((tsc_hz * wait_ms) & U64) + tsc_now) & U64


@dataclass(frozen=True)
class Windows7Config:
    clock_vector: int = 0xD1
    ipi_vector: int = 0xE1
    spurious_vector: int = 0x1F
    clock_source: str = "hpet"  # or "lapic-timer"
    clock_source_index: int = 3  # HalpClockSource as the seed's bugcheck shows it
    clock_period_ns: int = 15_625_000  # 64 Hz
    wait_ms: int = 3000
    early_boot_eoi_unexpected: bool = False  # whether phase-0 IDT stubs EOI unknown vectors
    # SeaBIOS built for QEMU software-enables the local APIC in smp_scan (src/fw/smp.c) during
    # platform setup, before its timers run with interrupts on; False models a firmware that
    # takes interrupts with the APIC still software-disabled.
    firmware_enables_apic: bool = True


class BootOutcome:
    """How one boot ended. (A plain class: one per reboot, and a dataclass's generated
    `__init__` stays Python in the compiled model, `apiclab.native`.)"""

    def __init__(self, ok: bool, bugcheck: tuple[int, tuple[int, int, int, int]] | None = None,
                 ticks: int = 0) -> None:
        self.ok = ok
        self.bugcheck = bugcheck
        self.ticks = ticks

    def __repr__(self) -> str:
        return f"BootOutcome(ok={self.ok}, bugcheck={self.bugcheck}, ticks={self.ticks})"


class Windows7:
    """The guest's side of one VM: its IDTs and the phases of a run/reboot/boot cycle."""

    # References set once for the guest's life, left out of the machine's state key
    # (`ModelVm.state_key`: every other attribute is in it, by value)
    FIXED_REFERENCES: ClassVar[frozenset[str]] = frozenset({"m", "cfg", "lcfg"})

    def __init__(self, machine: GuestPlatform, config: Windows7Config) -> None:
        self.m = machine
        self.cfg = config
        self.phase0_ticks = 0

    # --- the three interrupt tables the guest runs with ----------------------------------------

    def _os_idt(self, vector: int) -> None:
        """Running Windows: every interrupt handler ends with an EOI."""
        self.m.vcpu.apic_write(Reg.EOI, 0)

    def _firmware_ivt(self, vector: int) -> None:
        """SeaBIOS: an unknown vector reaches a default handler that IRETs; its hardware-IRQ
        handlers EOI the 8259 PIC, never the local APIC."""
        self.m.trace.record(self.m.engine.now, ev.Handler, vector=vector, eoi=False,
                            text=f"firmware default handler for {vector:#x}: iret, no APIC EOI")

    def _phase0_idt(self, vector: int) -> None:
        """Early-boot IDT: the clock stub counts and EOIs; other vectors reach stubs that, in
        Windows 7's HAL, do not EOI (configurable)."""
        if vector == self.cfg.clock_vector:
            self.phase0_ticks += 1
            self.m.vcpu.apic_write(Reg.EOI, 0)
        elif self.cfg.early_boot_eoi_unexpected:
            self.m.vcpu.apic_write(Reg.EOI, 0)

    # --- phases ---------------------------------------------------------------------------------

    def run_os(self) -> None:
        """Windows is up: OS IDT, APIC enabled, clock running, interrupts on."""
        vcpu = self.m.vcpu
        vcpu.idt = self._os_idt
        vcpu.apic_write(Reg.SVR, 0x100 | self.cfg.spurious_vector)
        self._start_clock()
        vcpu.sti()

    def shutdown(self, choices: Choices) -> Process:
        """The reboot path: CLI, a short tail of work (assumed 0-2 ms), then the reset-port write."""
        m, vcpu = self.m, self.m.vcpu
        vcpu.cli()
        if m.trace.recording:  # (asked first: see `Cpu.record`)
            m.trace.record(m.engine.now, ev.GuestNote, text="shutdown: interrupts disabled")
        yield Sleep(choices.between(0, 2_000) * 1_000)
        if m.trace.recording:
            vcpu.record(ev.Reboot, text="reset port written")
        self.m.io_out(RESET_PORT, 0x06)

    def firmware_and_loader(self, choices: Choices) -> Process:
        """From the reset vector to the kernel: firmware POST with interrupts on while it waits on
        its timers (assumed 1-50 ms, after 0.1-0.5 ms), then the boot loader and kernel with
        interrupts off (assumed 0.3-1.5 s)."""
        vcpu = self.m.vcpu
        vcpu.idt = self._firmware_ivt
        if self.cfg.firmware_enables_apic:
            vcpu.apic_write(Reg.SVR, vcpu.apic_read(Reg.SVR) | 0x100)
        yield Sleep(choices.between(1, 5) * 100_000)
        vcpu.sti()
        yield Sleep(choices.between(1, 50) * MS)
        vcpu.cli()
        yield Sleep(choices.between(300, 1500) * MS)

    def boot(self, choices: Choices, outcome: BootOutcome) -> Process:
        """From the reset vector to the end of phase-0 clock init."""
        m, vcpu, cfg = self.m, self.m.vcpu, self.cfg
        yield from self.firmware_and_loader(choices)
        # hal!HalpInitializeClock: early-boot IDT, enable the APIC, program the clock, STI, wait.
        self.phase0_ticks = 0
        vcpu.idt = self._phase0_idt
        vcpu.apic_write(Reg.SVR, 0x100 | cfg.spurious_vector)
        vcpu.apic_write(Reg.TPR, 0)
        self._start_clock()
        vcpu.sti()
        start = vcpu.rdtsc()
        deadline = phase0_deadline(start, m.tsc.hz, cfg.wait_ms)
        if m.trace.recording:  # (asked first: see `Cpu.record`)
            vcpu.record(ev.WaitStart, text="HalpWaitForPhase0ClockTick(3000)",
                        tsc=start, deadline=deadline, ticks=deadline - start)
        while self.phase0_ticks == 0 and vcpu.rdtsc() <= deadline:
            yield Wait(vcpu.delivered, m.tsc.ns_at(deadline + 1))
        outcome.ticks = self.phase0_ticks
        if self.phase0_ticks:
            if m.trace.recording:
                m.trace.record(m.engine.now, ev.ClockOk, ticks=self.phase0_ticks,
                               tsc=vcpu.rdtsc())
            outcome.ok = True
            return
        params = (HAL_CLOCK_INTERRUPT_NOT_RECEIVED, cfg.clock_source_index, 0, 0)
        outcome.ok = False
        outcome.bugcheck = (HAL_INITIALIZATION_FAILED, params)
        if m.trace.recording:
            vcpu.record(ev.Bugcheck, code=HAL_INITIALIZATION_FAILED, params=list(params),
                        tsc=vcpu.rdtsc())
        # KeBugCheckEx runs with interrupts disabled: its CLI is recorded after the call it
        # belongs to, so a property broken by the bugcheck points at the bugcheck.
        vcpu.cli()

    def _start_clock(self) -> None:
        m, cfg = self.m, self.cfg
        if cfg.clock_source == "hpet":
            # IOAPIC input 2, edge, fixed, physical destination 0, vector = clock vector.
            set_ioapic_entry(m, HPET_PIN, cfg.clock_vector)
            start_hpet_periodic(m, cfg.clock_period_ns)
        else:
            vcpu = m.vcpu
            vcpu.apic_write(Reg.TIMER_DIVIDE, 0b1011)  # divide by 1
            vcpu.apic_write(Reg.LVT_TIMER, (1 << 17) | cfg.clock_vector)  # periodic
            vcpu.apic_write(Reg.TIMER_INITIAL, cfg.clock_period_ns * m.vcpu.lapic.bus_hz // 10**9)
