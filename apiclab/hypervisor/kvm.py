"""A model of one KVM vCPU with its in-kernel local APIC, with APICv on or off.

How KVM moves interrupt state between its register page and the CPU's virtualization state —
accept, inject, VM entry, KVM_SET_LAPIC — with every version-dependent step asking the profile.
The SDM rules themselves are called from `apiclab.arch`; nothing here re-derives them. The CPU
core under it (IF, the handler table, NMI blocking, delivery at instruction boundaries) is
`apiclab.platform.cpu.Cpu`; KVM's per-profile entry and restore paths are `kvm_entry` and
`kvm_restore` beside this module.

KVM sources the paths here follow (`arch/x86/kvm/lapic.c`, `x86.c`, `vmx.c`): `__apic_accept_irq`
(accept), `inject_pending_event` / `kvm_cpu_get_interrupt` (injection without APICv),
`vmx_deliver_posted_interrupt` (posting), `kvm_apic_set_eoi_accelerated` (EOI-induced exit), the
APIC register and MSR emulation (`kvm_lapic_reg_write`, `kvm_x2apic_msr_write`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiclab.arch import apic_base
from apiclab.arch.lapic import (
    DELIVERY_FIXED,
    DELIVERY_LOWEST,
    DELIVERY_NMI,
    Accept,
    Effect,
    EoiBroadcast,
    LocalApic,
    LocalInterrupt,
    SendIpi,
    TimerChanged,
    self_ipi_vector,
)
from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_APIC_BASE, IA32_TSC_DEADLINE, Reg, msr_of, offset_of_msr
from apiclab.arch.vectors import vectors_of
from apiclab.arch.vmx import VirtualApic
from apiclab.engine import events as ev
from apiclab.engine.core import Engine
from apiclab.engine.trace import Trace
from apiclab.hypervisor import kvm_entry, kvm_restore
from apiclab.hypervisor.profiles import Profile
from apiclab.platform.cpu import Cpu
from apiclab.platform.lapic_timer import LapicTimer
from apiclab.platform.tsc import Tsc

PPR_MSR = msr_of(Reg.PPR)


class KvmVcpu(Cpu):
    """One vCPU of a VM: KVM's software APIC page, the VMCS APIC-virtualization state, the LAPIC
    timer, and the guest-facing APIC operations (register and MSR access), on the CPU core.
    """

    # KVM's per-profile paths live in kvm_entry and kvm_restore as functions of the vCPU; these
    # methods call them (defined, not aliased: a compiled class binds no function it is given)

    def vm_entry(self) -> None:
        kvm_entry.vm_entry(self)

    def set_apicv(self, active: bool) -> None:
        kvm_entry.set_apicv(self, active)

    def kvm_get_lapic(self) -> LapicState:
        return kvm_restore.kvm_get_lapic(self)

    def kvm_set_lapic(self, image: LapicState) -> None:
        kvm_restore.kvm_set_lapic(self, image)

    def __init__(
        self,
        engine: Engine,
        trace: Trace,
        profile: Profile,
        *,
        apicv: bool,
        tsc: Tsc,
        eoi_broadcast: Callable[[int], None] | None = None,
        apic_id: int = 0,
    ) -> None:
        super().__init__(engine, trace, tsc)
        self.profile = profile
        self.lapic = LocalApic(apic_id)
        # IA32_APIC_BASE (§10.4.4; EXTD via set_x2apic): only the bootstrap processor's has BSP
        self.apic_base = apic_base.reset_value(bsp=apic_id == 0)
        # With several vCPUs the machine routes every IPI over its bus (`ModelVm.send_ipi`).
        self.ipi_bus: Callable[[KvmVcpu, SendIpi], None] | None = None
        self.vapic: VirtualApic | None = VirtualApic(self.lapic) if apicv else None
        self.timer = LapicTimer(engine, self.lapic, tsc, self._timer_interrupt)
        self.eoi_broadcast = eoi_broadcast or (lambda vector: None)
        self.in_guest = False
        self.req_event = False  # KVM_REQ_EVENT
        self._parked_vapic: VirtualApic | None = None  # the VMCS state while APICv is inhibited
        self.registers_recorded = True  # whether events carry `registers()` (the trace's, not state)


    def save_attrs(self) -> tuple[Any, ...]:
        """The CPU's attributes (`Cpu.save_attrs`), then KVM's."""
        return (super().save_attrs(), self.profile, self.lapic, self.apic_base, self.ipi_bus,
                self.vapic, self.timer, self.eoi_broadcast, self.in_guest, self.req_event,
                self._parked_vapic, self.registers_recorded)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (cpu, self.profile, self.lapic, self.apic_base, self.ipi_bus, self.vapic, self.timer,
         self.eoi_broadcast, self.in_guest, self.req_event, self._parked_vapic,
         self.registers_recorded) = saved
        super().load_attrs(cpu)

    @property
    def apicv(self) -> bool:
        return self.vapic is not None

    # --- register snapshots for the trace -------------------------------------------------------

    def registers(self) -> dict[str, Any]:
        """The interrupt state a reader needs to follow a step: IRR/ISR/PPR/TPR, and with APICv
        RVI/SVI/VPPR and PIR. Empty while `registers_recorded` is off (a search that reads none of
        it: building it is a good part of a step's cost)."""
        if not self.registers_recorded:
            return {}
        lapic = self.lapic
        regs: dict[str, Any] = {
            "irr": vectors_of(lapic.irr),
            "isr": vectors_of(lapic.isr),
            "tpr": lapic.tpr,
        }
        if self.vapic is not None:
            regs.update(
                rvi=self.vapic.rvi,
                svi=self.vapic.svi,
                vppr=self.vapic.vppr,
                pir=vectors_of(self.vapic.pir),
            )
        else:
            regs["ppr"] = lapic.ppr()
        return regs

    # --- host side: accepting interrupts (KVM __apic_accept_irq, APIC_DM_FIXED) -----------------

    def accept_irq(self, vector: int, *, level: bool = False, source: str = "") -> None:
        lapic = self.lapic
        if not self.apic_base & apic_base.EN:
            # §10.4.3: a globally disabled APIC is as if the processor had none; nothing reaches it
            self.record(ev.Accept, vector=vector, source=source, path="apic-disabled")
            return
        vapic = self.vapic
        if vapic is not None and vector >= 16 and lapic.software_enabled:
            # vmx_deliver_posted_interrupt: PIR, ON, then the notification IPI if the vCPU is in
            # non-root operation (processed at once), else a kick (synced at the next entry).
            if level:
                lapic.tmr |= 1 << vector
                # KVM sets the EOI-exit bit of every vector the IOAPIC routes level-triggered
                # (kvm_ioapic_scan_entry → vmx_load_eoi_exitmap), so the guest's EOI exits and
                # reaches the IOAPIC's remote IRR.
                vapic.eoi_exit_bitmap |= 1 << vector
            else:
                lapic.tmr &= ~(1 << vector)
            vapic.post(vector)
            if self.in_guest:
                vapic.posted_interrupt_processing()
            else:
                self.req_event = True
            if self.trace.recording:
                self.record(ev.Accept, vector=vector, source=source, path="posted")
            self._try_deliver()
            return
        result = lapic.accept(vector, level=level)
        if self.trace.recording:
            self.record(ev.Accept, vector=vector, source=source, path=result.value)
        if result is Accept.ILLEGAL:
            # §10.5.3: accept() recorded the ESR bit; the LVT error entry reports it.
            self._apply(lapic.error_interrupt())
            return
        if result in (Accept.ACCEPTED, Accept.MERGED):
            self.req_event = True
            if self.in_guest:
                self.vm_entry()  # kick: exit and re-enter to process KVM_REQ_EVENT

    def _timer_interrupt(self, vector: int) -> None:
        self.accept_irq(vector, source="lapic-timer")

    # --- host side: VM exit (entry is `kvm_entry.vm_entry`) --------------------------------------

    def vm_exit(self) -> None:
        self.in_guest = False

    # --- guest side: APIC register and MSR access ----------------------------------------------

    def apic_read(self, offset: int) -> int:
        """A guest read. With APICv, APIC-register virtualization reads the page, and PPR is the
        stored VPPR (SDM §29.4.2, §29.5); without, KVM emulates the read (PPR computed)."""
        if self.vapic is not None and offset == Reg.PPR:
            return self.vapic.vppr
        return self.lapic.read(offset, self.engine.now)

    def apic_write(self, offset: int, value: int) -> None:
        """A guest write. With APICv, TPR, EOI and self-IPI writes are virtualized (SDM §29.1.2,
        §29.1.4, §29.1.5); every other write exits to KVM, which emulates it."""
        vapic = self.vapic
        if vapic is not None:
            if offset == Reg.TPR:
                vapic.tpr_virtualization(value)
                self._try_deliver()
                return
            if offset == Reg.EOI:
                self._virtual_eoi(vapic)
                return
            if offset == Reg.SELF_IPI and self.lapic.x2apic:
                vapic.self_ipi_virtualization(self_ipi_vector(value))
                self._try_deliver()
                return
        self._apply(self.lapic.write(offset, value, self.engine.now))
        if offset == Reg.EOI and self.trace.recording:
            self.record(ev.Eoi)
        if vapic is not None:
            self.vm_entry()  # the write exited; re-entry re-evaluates
        else:
            self._try_deliver()

    def set_x2apic(self, on: bool) -> None:
        """Enter or leave x2APIC mode directly (the run's start, before the guest's first step)."""
        self.lapic.set_x2apic(on)
        self.apic_base = self.apic_base | apic_base.EXTD if on else self.apic_base & ~apic_base.EXTD

    def guest_rdmsr(self, msr: int) -> int:
        """A guest RDMSR of an APIC MSR; GeneralProtection where the SDM raises #GP."""
        if msr == IA32_APIC_BASE:
            return self.apic_base
        value = self.lapic.read_msr(msr, self.engine.now)  # the SDM's #GP rules first
        if msr == PPR_MSR and self.vapic is not None:
            return self.vapic.vppr  # APIC-register virtualization reads VPPR (SDM §29.5)
        return value

    def guest_wrmsr(self, msr: int, value: int) -> None:
        """A guest WRMSR of an APIC MSR; GeneralProtection where the SDM raises #GP."""
        if msr == IA32_APIC_BASE:
            self._write_apic_base(value)
            return
        if msr == IA32_TSC_DEADLINE:
            self.write_msr(msr, value)
            return
        self.lapic.check_msr_write(msr, value)  # the SDM's #GP rules (§10.12.1.2)
        self.write_msr(msr, value)

    def _write_apic_base(self, value: int) -> None:
        """§10.12.5: only the legal mode transitions; leaving the APIC disabled loses its state
        (§10.4.3 "may return to the state ... after power-up or reset": the model takes that
        branch, the APIC ID back to the hardware's too, as KVM reloads it from the vCPU's ID
        when EN is set again) and entering x2APIC keeps it but for the logical ID, now derived
        (§10.12.10.2), and the ID, the x2APIC ID the hardware set (§10.12.5.1, `set_x2apic`)."""
        transition = apic_base.check_write(self.apic_base, value)
        self.apic_base = value
        if transition.disables:
            self.timer.stop()
            self.lapic.reset()
        self.lapic.set_x2apic(transition.new is apic_base.ApicMode.X2APIC)
        self._apply((TimerChanged(),))
        self._try_deliver()

    def write_msr(self, msr: int, value: int) -> None:
        """WRMSR to IA32_TSC_DEADLINE (KVM emulates it)."""
        if msr == IA32_TSC_DEADLINE:
            self._apply(self.lapic.write_msr(msr, value, self.engine.now))
        else:
            # x2APIC MSR → register offset by the SDM's mapping (§10.12.1.2), through the same
            # APICv-aware path as an xAPIC store
            self.apic_write(offset_of_msr(msr), value)

    def _virtual_eoi(self, vapic: VirtualApic) -> None:
        result = vapic.eoi_virtualization()
        if self.trace.recording:
            self.record(ev.Eoi, vector=result.vector)
        if result.eoi_exit:
            # EOI-induced exit: KVM's kvm_apic_set_eoi_accelerated forwards level EOIs.
            if self.lapic.tmr & (1 << result.vector):
                self.eoi_broadcast(result.vector)
            self.vm_entry()
        else:
            self._try_deliver()

    def _apply(self, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, TimerChanged):
                self.timer.rearm()
            elif isinstance(effect, EoiBroadcast):
                self.eoi_broadcast(effect.vector)
            elif isinstance(effect, SendIpi) and self.ipi_bus is not None:
                self.ipi_bus(self, effect)
            elif isinstance(effect, SendIpi) and effect.to_self:
                mode = effect.icr.delivery_mode
                if mode in (DELIVERY_FIXED, DELIVERY_LOWEST):
                    self.accept_irq(effect.icr.vector, level=effect.icr.level_triggered,
                                    source="ipi")
                elif mode == DELIVERY_NMI:
                    self.nmi("ipi")
                else:  # SMI, INIT, SIPI, ExtINT to self: not modelled, recorded as such
                    self.record(ev.IpiIgnored, vector=effect.icr.vector, delivery_mode=mode)
            elif isinstance(effect, LocalInterrupt):
                self.accept_irq(effect.vector, source="lvt-error")

    # --- what the CPU core takes at an instruction boundary -------------------------------------

    @property
    def delivery_via(self) -> str:
        return "virtual" if self.vapic else "inject"

    def _next_vector(self) -> tuple[int, bool]:
        """The vector the CPU takes now (-1 if none) and whether its IRR/VIRR bit was set.

        With APICv: virtual-interrupt delivery of the recognized RVI (SDM §29.2.2) — RVI is taken
        even when its VIRR bit is clear. Without: KVM's inject_pending_event acknowledges the
        highest deliverable IRR vector into ISR (kvm_cpu_get_interrupt) and injects it.
        """
        if not self.in_guest or not self.if_flag:
            return -1, False
        vapic = self.vapic
        if vapic is not None:
            if not vapic.can_deliver(True):
                return -1, False
            was_set = bool(self.lapic.irr >> vapic.rvi & 1)
            return vapic.deliver(), was_set
        if self.lapic.highest_priority_int() < 0:
            return -1, False
        return self.lapic.acknowledge(), True

    def init_signal(self) -> None:
        """INIT (§10.4.7.3): the core and the local APIC reset, the APIC to its power-up state but
        for the APIC ID (kept by `LocalApic.init`); the CPU then waits for a start-up IPI, taking
        no interrupts and running no code. IA32_APIC_BASE is not changed."""
        self.record(ev.Init)
        self.timer.stop()
        self.lapic.init()
        self.if_flag = False
        self.nmi_running = self.nmi_pending = False
        self.in_guest = False
        self.wait_for_sipi = True

    def startup(self, vector: int) -> None:
        """A start-up IPI (§10.6.1 delivery mode 110): a CPU waiting for SIPI starts at
        vector << 12; one that is not waiting ignores it."""
        if not self.wait_for_sipi:
            self.record(ev.IpiIgnored, vector=vector, delivery_mode=6)
            return
        self.record(ev.Startup, vector=vector)
        self.wait_for_sipi = False
        self.vm_entry()
