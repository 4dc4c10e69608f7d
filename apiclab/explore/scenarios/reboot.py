"""The `reboot` family: one Windows 7 reboot on one VM, with the interrupt traffic around the
reset as explicit choices (docs/design.md §4).

Draws, in order (zero is always the simplest: fewer vectors, earlier, defaults):
1. how many host interrupts arrive around the reboot (0-3);
2. for each, its vector (device vectors low to high, then the clock 0xD1, then the IPI 0xE1) and
   when it lands: while Windows runs (handled and EOI'd), after the shutdown's CLI (pending at the
   reset), while QEMU handles the reset-port exit (the vCPU is outside the guest, so with APICv
   it is posted in PIR — what 967235d32032 clears), or after the reset (dropped: the APIC is
   software-disabled);
3. whether Windows reboots from inside an interrupt handler, and whose (that vector is in service
   at the reset);
   — checkpoint: the vCPU state after the reset —
4. the phase-0 clock source (HPET or LAPIC timer);
5. whether early boot EOIs an unexpected vector.

Firmware and loader timings are fixed at their earliest values of the guest model, so a run spans
about 0.3 s of virtual time before the 3 s clock wait and costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.core import Process, Sleep
from apiclab.engine.trace import Trace
from apiclab.explore.choices import checkpoint
from apiclab.explore.scenarios.state import vcpu_state_key
from apiclab.guest.windows7 import BootOutcome, Windows7, Windows7Config
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import Profile

NAME = "reboot"
SUMMARY = "a Windows 7 reboot with interrupts landing before the CLI, pending at reset, or after it"
TSC_HZ = 2_600_000_000
US = 1_000
MAX_ARRIVALS = 3
# Device vectors assumed as in `win7-reboot-0x5c`, then Windows' clock and IPI vectors.
VECTORS = (0x51, 0x61, 0x71, 0x81, 0x91, 0xA1, 0xB1, 0xD1, 0xE1)
SLOTS = (
    "while Windows runs",
    "after the shutdown's CLI, pending at the reset",
    "while QEMU handles the reset-port exit (vCPU outside the guest)",
    "after the reset",
)
CLOCK_SOURCES = ("hpet", "lapic-timer")
SHUTDOWN_TAIL_US = 1_000  # CLI to reset-port write; arrivals in that slot come 100 us apart


def _source(vector: int) -> str:
    return {0xD1: "clock", 0xE1: "ipi"}.get(vector, "device")


BARE_NAME = "reboot-bare-firmware"
BARE_SUMMARY = (
    "the reboot family under a firmware that takes interrupts before it software-enables the "
    "APIC (SeaBIOS for QEMU enables it first)"
)


def run(profile: Profile, apicv: bool, choices: Choices) -> Trace:
    return _run(profile, apicv, choices, Windows7Config())


def run_bare_firmware(profile: Profile, apicv: bool, choices: Choices) -> Trace:
    """Where KVM's entry-time RVI write matters: from 6.14 (ca0245d131b1) KVM_SET_LAPIC no
    longer writes RVI, and entry writes it only while the APIC is software-enabled, so a stale
    RVI survives the reset until the guest enables the APIC."""
    return _run(profile, apicv, choices, Windows7Config(firmware_enables_apic=False))


def _run(profile: Profile, apicv: bool, choices: Choices, config: Windows7Config) -> Trace:
    trace = Trace()
    machine = _ResetExitMachine(profile, apicv=apicv, tsc_hz=TSC_HZ, trace=trace)
    vcpu, engine = machine.vcpu, machine.engine
    count = choices.below(MAX_ARRIVALS + 1)
    arrivals = [(choices.pick(VECTORS), choices.below(len(SLOTS))) for _ in range(count)]
    busy = choices.below(len(VECTORS) + 1)  # 0: no handler running when Windows reboots
    for vector, slot in arrivals:
        trace.record(0, ev.Choice, text=f"vector {vector:#04x} arrives {SLOTS[slot]}")
    if busy:
        trace.record(
            0, ev.Choice,
            text=f"Windows reboots from inside the handler of {VECTORS[busy - 1]:#04x} (in service)",
        )

    machine.during_exit = [v for v, s in arrivals if s == 2]
    guest = Windows7(machine, config)
    vcpu.vm_entry()
    guest.run_os()
    engine.run_process(_arrive(machine, [v for v, s in arrivals if s == 0], 100 * US))
    if busy:
        # A crash or reboot issued from an interrupt handler: its vector is in service, no EOI.
        vcpu.idt = lambda vector: None
        vcpu.accept_irq(VECTORS[busy - 1], source=_source(VECTORS[busy - 1]))
    for k, vector in enumerate(v for v, s in arrivals if s == 1):
        engine.after((k + 1) * 100 * US, _accept_later(machine, vector))
    engine.run_process(guest.shutdown(Choices(replay=[SHUTDOWN_TAIL_US])))
    engine.run_process(_arrive(machine, [v for v, s in arrivals if s == 3], 50 * US))

    checkpoint(choices, vcpu_state_key(vcpu))
    clock = choices.pick(CLOCK_SOURCES)
    eoi = choices.below(2) == 1
    trace.record(
        engine.now, ev.Choice,
        text=f"clock source {clock}; early boot {'EOIs' if eoi else 'does not EOI'} unexpected vectors",
    )
    guest.cfg = replace(guest.cfg, clock_source=clock, early_boot_eoi_unexpected=eoi)
    engine.run_process(guest.boot(Choices(replay=[]), BootOutcome(ok=False)))
    trace.record(engine.now, ev.End, **vcpu.registers())
    return trace


class _ResetExitMachine(ModelVm):
    """The reset-port write is an I/O exit: the vCPU leaves the guest before QEMU starts the
    reset, and interrupts arriving meanwhile find it outside (posted in PIR with APICv)."""

    during_exit: list[int]

    def io_out(self, port: int, value: int) -> None:
        self.vcpu.vm_exit()
        for vector in self.during_exit:
            self.vcpu.accept_irq(vector, source=_source(vector))
        super().io_out(port, value)


def _arrive(machine: ModelVm, vectors: list[int], gap_ns: int) -> Process:
    for vector in vectors:
        yield Sleep(gap_ns)
        machine.vcpu.accept_irq(vector, source=_source(vector))
    yield Sleep(gap_ns)


def _accept_later(machine: ModelVm, vector: int) -> Callable[[], None]:
    return lambda: machine.vcpu.accept_irq(vector, source=_source(vector))
