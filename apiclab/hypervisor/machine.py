"""One VM as QEMU and KVM build it: QEMU's devices (HPET, and the reset sequence) around KVM's
in-kernel IOAPIC and vCPU. QEMU's system reset is modelled after `qemu_system_reset`: devices are
reset first, then the vCPU's APIC state is pushed with KVM_SET_LAPIC (docs/design.md §3).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import Any

from mypy_extensions import mypyc_attr

from apiclab.arch import apic_base, ipi_bus
from apiclab.arch.ioapic import Ioapic, IoapicMessage
from apiclab.arch.lapic import (
    DELIVERY_EXTINT,
    DELIVERY_FIXED,
    DELIVERY_INIT,
    DELIVERY_LOWEST,
    DELIVERY_NMI,
    DELIVERY_STARTUP,
    LVT_MASKED,
    SHORTHAND_NONE,
    Icr,
    SendIpi,
)
from apiclab.arch.lapic_state import LapicState, ReadOnlyLapicState
from apiclab.arch.lint1 import Lint1Delivery, lint1_pulse
from apiclab.arch.registers import LVT_REGS, Reg
from apiclab.arch.vmx import VirtualApic
from apiclab.engine import events as ev
from apiclab.engine.core import Engine
from apiclab.engine.idle import IdleTicks, QuietSteps
from apiclab.engine.trace import Trace
from apiclab.hypervisor import savevm
from apiclab.hypervisor.kvm import KvmVcpu
from apiclab.hypervisor.profiles import Profile
from apiclab.platform import pit
from apiclab.platform.hpet import HpetComparator
from apiclab.platform.pc import (
    HPET_BASE,
    HPET_PIN,
    IOAPIC_BASE,
    OPEN_BUS,
    PIT_PIN,
    RESET_PORT,
    testdev_line,
)
from apiclab.platform.tsc import Tsc


def reset_image() -> LapicState:
    """The image QEMU pushes after a system reset (hw/intc/apic_common.c `apic_reset_common`):
    SDM power-up values (§10.4.7.1), and LINT0 of the boot CPU as ExtINT so the PIC reaches it."""
    image = LapicState.zero()
    image.set(Reg.ID, 0)
    image.set(Reg.VERSION, 0x00050014)
    image.set(Reg.DFR, 0xFFFFFFFF)
    image.set(Reg.SVR, 0xFF)
    for reg in LVT_REGS:
        # QEMU's APIC has six LVT entries (APIC_LVT_NB) and no CMCI: its slot stays 0, as KVM
        # reports for a fresh vCPU too.
        image.set(reg, 0 if reg == Reg.LVT_CMCI else LVT_MASKED)
    image.set(Reg.LVT_LINT0, DELIVERY_EXTINT << 8)
    return image


# the image every system reset pushes, built once (read-only: KVM_SET_LAPIC only reads it)
_RESET_IMAGE = ReadOnlyLapicState(reset_image())


def _vcpu_key(vcpu: KvmVcpu) -> tuple[object, ...]:
    """One vCPU's part of `ModelVm.state_key`: its CPU and KVM state, its APIC, its VMX state
    (the active one and one parked while APICv is inhibited), its timer, its waiters. Every
    attribute is read by name (in compiled code a field read, where `operator.attrgetter` is
    a generic look-up per name); tests/hypervisor/test_state_key.py sees each one change it."""
    lapic = vcpu.lapic
    vapic, parked = vcpu.vapic, vcpu._parked_vapic
    return (
        vcpu.apic_base, vcpu.ipi_bus, vcpu.wait_for_sipi, vcpu.if_flag, vcpu.in_guest,
        vcpu.req_event, vcpu.idt, vcpu._delivering, vcpu.nmi_running, vcpu.nmi_pending,
        lapic.initial_id, lapic.apic_id, lapic.bus_hz, lapic.x2apic, lapic.tpr, lapic.ldr,
        lapic.dfr, lapic.svr, lapic.esr, lapic.esr_pending, lapic.error_armed, lapic.icr,
        lapic.irr, lapic.isr, lapic.tmr, lapic.timer_initial, lapic.timer_divide,
        lapic.timer_ran_out, lapic.tsc_deadline, tuple(lapic.lvt.values()),
        lapic.timer_start_ns if lapic.timer_initial else None,
        None if vapic is None else _vapic_key(vapic),
        None if parked is None else _vapic_key(parked),
        vcpu.timer._pending is not None, vcpu.delivered.waiting,
    )


def _counter_key(c: pit.Counter) -> tuple[object, ...]:
    return (c.mode, c.rw, c.initial, c.load_edge, c.low_byte, c.read_msb_next, c.out,
            tuple(c.latched))


def _vapic_key(vapic: VirtualApic) -> tuple[object, ...]:
    return (vapic.rvi, vapic.svi, vapic.vppr, vapic.pir, vapic.on, vapic.eoi_exit_bitmap,
            vapic.interrupt_window_exiting, vapic.recognized)


def _values(obj: object) -> tuple[object, ...]:
    """Every attribute of a guest's object by value: its `__dict__`, or the attributes a class
    compiled by mypyc lists (`apiclab.native`), so that one added later is keyed too; but the
    references its class names in `FIXED_REFERENCES` (set once for the object's life: its
    machine, its configuration), which are the same in every state of one run."""
    kind = type(obj)
    reader = _COMPILED_READERS.get(kind)
    if reader is None:
        fixed: frozenset[str] = getattr(obj, "FIXED_REFERENCES", frozenset())
        if hasattr(obj, "__dict__"):
            return tuple(value for name, value in vars(obj).items() if name not in fixed)
        names = [name for name in kind.__mypyc_attrs__ if name not in fixed]  # type: ignore[attr-defined]
        reader = _COMPILED_READERS[kind] = (len(names), attrgetter(*names))
    count, read = reader
    values = read(obj)  # one call for them all: a tuple, or the value itself for one name
    return values if count > 1 else (values,)


# each compiled guest class's number of attributes and their reader (built at its first key)
_COMPILED_READERS: dict[type, tuple[int, Callable[[object], Any]]] = {}


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed by Python classes
class ModelVm:
    """The model of one QEMU + KVM virtual machine (KVM's vCPU and in-kernel IOAPIC, QEMU's HPET,
    PIT and reset), on the simulated clock; the real /dev/kvm PC is `backends.kvm.machine.KvmPc`."""

    def __init__(self, profile: Profile, *, apicv: bool, tsc_hz: int, trace: Trace,
                 cpus: int = 1) -> None:
        self.engine = Engine()
        self.trace = trace
        self.profile = profile
        self.tsc = Tsc(tsc_hz)
        self.ioapic = Ioapic()
        self.vcpu = KvmVcpu(
            self.engine, trace, profile, apicv=apicv, tsc=self.tsc,
            eoi_broadcast=self._eoi_to_ioapic,
        )
        # Further vCPUs (APIC IDs 1..cpus-1) share the APIC bus with vCPU 0; with more than one,
        # every IPI goes over the bus (`send_ipi`), the self-IPI included.
        self.vcpus = [self.vcpu] + [
            KvmVcpu(self.engine, trace, profile, apicv=apicv, tsc=self.tsc,
                    eoi_broadcast=self._eoi_to_ioapic, apic_id=i)
            for i in range(1, cpus)
        ]
        if cpus > 1:
            for vcpu in self.vcpus:
                vcpu.ipi_bus = self.send_ipi
        self.hpet = HpetComparator(self.engine, HPET_PIN, self._hpet_edge)
        self.pit = pit.Pit(self.engine, lambda level: self.irq_line(PIT_PIN, level))
        # Off by default: a run turns them on while its trace is not recording (`skip_quiet`).
        self.idle_ticks = IdleTicks(self.engine, self.state)
        self.hpet.idle = self.vcpu.timer.idle = self.idle_ticks
        self.guest_state: tuple[object, ...] = ()  # objects of the guest a handler can change
        self.quiet: QuietSteps = _VmQuiet(self)
        self.vcpu.timer.quiet = self.quiet

    def skip_quiet(self, enabled: bool, guest_state: tuple[object, ...] = ()) -> None:
        """Skip the steps that cannot change anything (`apiclab.engine.idle`): ticks into a
        blocked vector, and interrupts from outside that the guest takes and EOIs from a state
        seen before. `guest_state`: the guest's objects its handlers can change (the state key
        must cover them). Only for runs whose trace is not recording."""
        self.idle_ticks.enabled = self.quiet.enabled = enabled
        self.guest_state = guest_state

    def state_key(self) -> tuple[object, ...]:
        """The state of the machine and the guest by value, but for the vCPUs' counts of
        deliveries (`state` adds vCPU 0's): equal keys are equal states. It covers every
        attribute of every object a step can reach (tests/hypervisor/test_state_key.py changes
        each one and sees the key change) but references that never change (the engine, the
        trace, the profile, the TSC, the devices' callbacks) and one time no rule reads: the
        APIC timer's start while its initial count is 0 (every read of the current count and
        every re-arm checks the initial count first, §10.5.4; a new count sets a new start).
        A scheduled expiry counts by whether it is pending, not by when: the time of a step is
        not state (`apiclab.engine.idle`)."""
        vcpus = self.vcpus
        io, hpet, pit = self.ioapic, self.hpet, self.pit
        pending = pit._pending
        c0, c1, c2 = pit.counters
        guests = self.guest_state
        return (
            _vcpu_key(vcpus[0]) if len(vcpus) == 1 else tuple([_vcpu_key(v) for v in vcpus]),
            io.ioregsel, io.ioapic_id, tuple(io.redirection), tuple(io.line),
            hpet.period_ns, hpet.general_config, hpet.timer0_config, hpet.comparator,
            hpet._pending is not None,
            pending[0] is not None, pending[1] is not None, pending[2] is not None,
            _counter_key(c0), _counter_key(c1), _counter_key(c2),
            _values(guests[0]) if len(guests) == 1 else tuple([_values(g) for g in guests]),
        )

    def state(self) -> tuple[object, ...]:
        """The state by value, vCPU 0's deliveries included: two snapshots are equal exactly
        when nothing changed in between and no guest code ran."""
        return self.state_key(), self.vcpu.deliveries

    def interrupt(self, vector: int, source: str) -> None:
        """An edge-triggered interrupt from outside the vCPU (another CPU's IPI, a device through
        KVM's irqchip): accepted by vCPU 0, and skipped when it is known to change nothing."""
        self.quiet.run((vector, source), self.accept, vector, source)

    def accept(self, vector: int, source: str) -> None:
        """vCPU 0 accepts an edge-triggered `vector` (the step `interrupt` may skip)."""
        self.vcpu.accept_irq(vector, source=source)

    # --- interrupt routing (KVM's in-kernel IOAPIC) --------------------------------------------

    def irq_line(self, pin: int, asserted: bool) -> None:
        """KVM_IRQ_LINE: drive an IOAPIC input and deliver what it sends."""
        self._from_ioapic(self.ioapic.set_irq(pin, asserted))

    def _from_ioapic(self, messages: tuple[IoapicMessage, ...]) -> None:
        """Deliver what the IOAPIC sends. With one vCPU, vCPU 0 accepts every message, as the
        model always has (its guests' entries all name it). With several, a message goes on the
        APIC bus like an IPI with no shorthand: every APIC whose *current* ID (or logical ID)
        the entry's destination names accepts it (82093AA §3.2.4; SDM §10.6.2.1-2), one of them
        for lowest priority (§10.6.2.4)."""
        for message in messages:
            source = f"ioapic-pin{message.pin}"
            if len(self.vcpus) == 1:
                self.vcpu.accept_irq(message.vector, level=message.level, source=source)
                continue
            # an 8-bit destination of 0xFF is the broadcast (§10.6.2.1), in x2APIC mode too (an
            # xAPIC-format message; KVM's x2APIC broadcast quirk does the same)
            dest = 0xFFFFFFFF if message.destination == 0xFF else message.destination
            icr = Icr(message.vector, message.delivery_mode, message.logical, True,
                      message.level, SHORTHAND_NONE, dest)
            apics = [v.lapic for v in self.vcpus]
            targets = ipi_bus.destinations(0, icr, apics)
            if icr.delivery_mode == DELIVERY_LOWEST:
                targets = ipi_bus.lowest_priority(targets, apics)
            self._deliver(targets, icr, source)

    def send_ipi(self, sender: KvmVcpu, ipi: SendIpi) -> None:
        """An IPI on the APIC bus: every APIC it addresses receives it (§10.6.2), one of them
        for lowest priority (§10.6.2.4)."""
        icr = ipi.icr
        apics = [v.lapic for v in self.vcpus]
        index = self.vcpus.index(sender)
        targets = ipi_bus.destinations(index, icr, apics)
        mode = icr.delivery_mode
        if mode in (DELIVERY_FIXED, DELIVERY_LOWEST) and icr.vector < 16:
            # §10.5.3: the sender already flagged its own receive error (LocalApic._send)
            targets = [t for t in targets if t != index]
        if mode == DELIVERY_LOWEST:
            targets = ipi_bus.lowest_priority(targets, apics)
        self._deliver(targets, icr, f"ipi-cpu{index}")

    def _deliver(self, targets: list[int], icr: Icr, source: str) -> None:
        """Each vCPU of `targets` receives the message `icr` describes (§10.6.1 delivery modes)."""
        mode = icr.delivery_mode
        for t in targets:
            vcpu = self.vcpus[t]
            if mode in (DELIVERY_FIXED, DELIVERY_LOWEST):
                vcpu.accept_irq(icr.vector, level=icr.level_triggered, source=source)
            elif mode == DELIVERY_NMI:
                vcpu.nmi(source)
            elif mode == DELIVERY_INIT and (icr.level_assert or not icr.level_triggered):
                vcpu.init_signal()
            elif mode == DELIVERY_INIT:
                # §10.6.1 INIT level de-assert: not supported by Pentium 4 and Xeon; on P6 it only
                # reloads the arbitration IDs (§10.4.7.4). No APIC register changes.
                vcpu.record(ev.IpiIgnored, vector=icr.vector, delivery_mode=mode)
            elif mode == DELIVERY_STARTUP:
                vcpu.startup(icr.vector)
            else:  # SMI, ExtINT: not modelled, recorded as such
                vcpu.record(ev.IpiIgnored, vector=icr.vector, delivery_mode=mode)

    def pulse_lint1(self) -> None:
        """The platform's NMI source pulses LINT1 (a PC wires it to every CPU's LINT1; the
        programs that pulse it have one CPU). The SDM's rule decides (`apiclab.arch.lint1`,
        §10.5.1), not KVM's: KVM has no LINT1 pin for userspace to pulse (its KVM_NMI queues an
        NMI past the LVT). A globally disabled APIC (§10.4.3) is not modelled here: the pulse is
        recorded as not reaching it."""
        for vcpu in self.vcpus:
            entry = vcpu.lapic.lvt[Reg.LVT_LINT1]
            pulse = lint1_pulse(entry)
            if not vcpu.apic_base & apic_base.EN:
                vcpu.record(ev.Accept, vector=pulse.vector, source="lint1", path="apic-disabled")
            elif pulse.delivery is Lint1Delivery.NMI:
                vcpu.nmi("lint1")
            elif pulse.delivery is Lint1Delivery.FIXED:
                vcpu.accept_irq(pulse.vector, level=False, source="lint1")
            elif pulse.delivery is Lint1Delivery.INIT:
                vcpu.init_signal()
            else:  # masked (dropped); SMI, ExtINT, unsupported: not modelled, recorded as such
                vcpu.record(ev.Accept, vector=pulse.vector, source="lint1",
                            path=f"lint1-{pulse.delivery.value}")

    def _hpet_edge(self, pin: int) -> int:
        """HPET timer 0's edge on its IOAPIC input; `QuietSteps.run`'s verdict on it."""
        return self.quiet.run(("hpet", pin), self._edge, pin)

    def _edge(self, pin: int) -> None:
        self.irq_line(pin, True)
        self.irq_line(pin, False)

    def _eoi_to_ioapic(self, vector: int) -> None:
        self._from_ioapic(self.ioapic.eoi(vector))

    # --- guest port I/O and MMIO (the step program's OUT, IN, MMIO_WRITE, MMIO_READ) ---------

    def io_in(self, port: int) -> int:
        """A guest IN of one byte: the PIT's ports, else all ones (nothing decodes it)."""
        return self.pit.io_read(port) if port in pit.PORTS else 0xFF

    def xapic_base(self) -> int:
        """Where the xAPIC page is decoded: IA32_APIC_BASE[MAXPHYADDR-1:12] (§10.4.5, relocation
        by a WRMSR; XAPIC_BASE after reset)."""
        return apic_base.page_base(self.vcpu.apic_base)

    def mmio_write(self, address: int, value: int) -> None:
        """A guest dword store: the IOAPIC's register window, the HPET's page, or the xAPIC page;
        else dropped."""
        if HPET_BASE <= address < HPET_BASE + 0x400:
            self.hpet.write(address - HPET_BASE, value)
        elif IOAPIC_BASE <= address < IOAPIC_BASE + 0x20:
            self._from_ioapic(self.ioapic.write(address - IOAPIC_BASE, value & 0xFFFFFFFF))
        elif (base := self.xapic_base()) <= address < base + 0x400 and self._page_decoded():
            self.vcpu.apic_write(address - base, value & 0xFFFFFFFF)

    def mmio_read(self, address: int) -> int:
        """A guest dword load, decoded as `mmio_write` decodes stores."""
        if IOAPIC_BASE <= address < IOAPIC_BASE + 0x20:
            return self.ioapic.read(address - IOAPIC_BASE)
        if HPET_BASE <= address < HPET_BASE + 0x400:
            return self.hpet.read(address - HPET_BASE) & 0xFFFFFFFF
        base = self.xapic_base()
        if base <= address < base + 0x400 and self._page_decoded():
            return self.vcpu.apic_read(address - base) & 0xFFFFFFFF
        return OPEN_BUS

    def _page_decoded(self) -> bool:
        """The xAPIC page answers only while the APIC is globally enabled (§10.4.3: disabled,
        the processor is as one without an APIC) and not in x2APIC mode (§10.12.2)."""
        return bool(self.vcpu.apic_base & apic_base.EN) and not self.vcpu.lapic.x2apic

    # --- QEMU: system reset ---------------------------------------------------------------------

    def io_out(self, port: int, value: int) -> None:
        """A guest OUT that exits to QEMU: the reset port, the PIT and pc-testdev's lines."""
        line = testdev_line(port)
        if line is not None:
            # pc-testdev: ISA line `line`, which reaches the IOAPIC input of the same number but
            # for IRQ0 (input 2, the MADT override, as PIT_PIN)
            self.irq_line(PIT_PIN if line == 0 else line, bool(value))
        elif port == RESET_PORT and value & 0x04:
            self.system_reset()
        elif port in pit.PORTS:
            self.pit.io_write(port, value)

    def system_reset(self) -> None:
        """qemu_system_reset: the vCPU leaves the guest, devices reset (HPET stops, IOAPIC entries
        masked), then KVM_SET_LAPIC with the reset image, then KVM_RUN at the reset vector."""
        vcpu = self.vcpu
        vcpu.vm_exit()
        if self.trace.recording:
            self.trace.record(self.engine.now, ev.Reset, **vcpu.registers())
        self.hpet.reset()
        self.pit.reset()  # QEMU resets the PIT with the other devices (hw/timer/i8254.c pit_reset)
        self.ioapic = Ioapic()
        vcpu.timer.stop()
        vcpu.reset_cpu()
        vcpu.kvm_set_lapic(_RESET_IMAGE)
        vcpu.vm_entry()

    # --- QEMU: savevm / loadvm (apiclab.hypervisor.savevm) --------------------------------------

    def snapshot(self) -> savevm.VmSnapshot:
        """savevm: stop the vCPU and keep its APIC state."""
        return savevm.savevm(self)

    def restore(self, snapshot: savevm.VmSnapshot) -> bool:
        """loadvm: put the APIC state back (the vCPU stays stopped); whether the LAPIC timer is
        armed afterwards."""
        return savevm.loadvm(self, snapshot)


class _VmQuiet(QuietSteps):
    """The machine's memo of quiet steps, keyed by its state and counting vCPU 0's deliveries,
    asked directly (see `QuietSteps.key`)."""

    def __init__(self, vm: ModelVm) -> None:
        super().__init__(vm.engine)
        self.vm = vm

    def key(self) -> Hashable:
        return self.vm.state_key()

    def count(self) -> int:
        return self.vm.vcpu.deliveries

    def advance(self, n: int) -> None:
        self.vm.vcpu.deliveries += n
