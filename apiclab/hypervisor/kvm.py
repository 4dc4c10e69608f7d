"""A model of one KVM vCPU with its in-kernel local APIC, with APICv on or off.

How KVM moves interrupt state between its register page and the CPU's virtualization state —
accept, inject, VM entry, KVM_SET_LAPIC — with every version-dependent step asking the profile.
The SDM rules themselves are called from `apiclab.arch`; nothing here re-derives them.

KVM sources the paths follow (`arch/x86/kvm/lapic.c`, `x86.c`, `vmx.c`): `__apic_accept_irq`
(accept), `vcpu_enter_guest` (entry: KVM_REQ_EVENT, `inject_pending_event`, `hwapic_irr_update`),
`kvm_apic_set_state` / `kvm_apic_post_state_restore` (KVM_SET_LAPIC), `vmx_deliver_posted_interrupt`
and `vmx_sync_pir_to_irr` (posting), `kvm_apic_set_eoi_accelerated` (EOI-induced exit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiclab.arch import apic_base
from apiclab.arch.lapic import (
    DELIVERY_FIXED,
    DELIVERY_LOWEST,
    DELIVERY_NMI,
    TIMER_ONE_SHOT,
    Accept,
    Effect,
    EoiBroadcast,
    GeneralProtection,
    LocalApic,
    LocalInterrupt,
    SendIpi,
    TimerChanged,
)
from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_APIC_BASE, IA32_TSC_DEADLINE, Reg, offset_of_msr
from apiclab.arch.vectors import highest, vectors_of
from apiclab.arch.vmx import VirtualApic
from apiclab.engine import events as ev
from apiclab.engine.core import Engine, Signal
from apiclab.engine.trace import Trace
from apiclab.hypervisor.profiles import Profile, Sw
from apiclab.platform.lapic_timer import LapicTimer
from apiclab.platform.tsc import Tsc

# The registers a KVM_SET_LAPIC image carries that are plain register state (ISR/IRR/TMR banks
# are restored as whole sets below).


def sync_pir_to_irr(vapic: VirtualApic) -> int:
    """KVM's `vmx_sync_pir_to_irr` (kicked vCPU, KVM_GET_LAPIC, entry): OR PIR into the page's
    IRR and clear it and ON. Returns the highest IRR vector (-1 if none); the caller decides what
    RVI becomes — that choice differs across KVM versions. KVM policy, not an SDM rule: the CPU's
    own posted-interrupt processing (§29.6) is `VirtualApic.posted_interrupt_processing`."""
    if vapic.on or vapic.pir:
        vapic.on = False
        vapic.page.irr |= vapic.pir
        vapic.pir = 0
    return highest(vapic.page.irr)


class KvmVcpu:
    """vCPU 0 of a VM: KVM's software APIC page, the VMCS APIC-virtualization state, the LAPIC
    timer, and the guest-facing CPU operations (STI/CLI, APIC access, RDTSC, interrupt delivery).
    """

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
        self.engine = engine
        self.trace = trace
        self.profile = profile
        self.tsc = tsc
        self.lapic = LocalApic(apic_id)
        # §10.4.4: the BSP flag is set in the bootstrap processor's IA32_APIC_BASE only
        self.apic_base = apic_base.reset_value(bsp=apic_id == 0)
        # With several vCPUs the machine routes every IPI over its bus (`ModelVm.send_ipi`).
        self.ipi_bus: Callable[[KvmVcpu, SendIpi], None] | None = None
        self.wait_for_sipi = False  # after an INIT (§10.4.7.3), until a start-up IPI  # IA32_APIC_BASE (§10.4.4); EXTD via set_x2apic
        self.vapic: VirtualApic | None = VirtualApic(self.lapic) if apicv else None
        self.timer = LapicTimer(engine, self.lapic, tsc, self._timer_interrupt)
        self.eoi_broadcast = eoi_broadcast or (lambda vector: None)
        self.if_flag = False
        self.in_guest = False
        self.req_event = False  # KVM_REQ_EVENT
        self.idt: Callable[[int], None] = lambda vector: None
        self.delivered = Signal()  # fires after every delivered interrupt (wakes HLT and waits)
        self.deliveries = 0  # interrupts delivered so far (each ran guest code)
        self._delivering = False
        self.nmi_running = False  # an NMI handler is running (NMIs blocked until its IRET)
        self.nmi_pending = False  # one NMI held while blocked (§6.7.1)
        self._parked_vapic: VirtualApic | None = None  # the VMCS state while APICv is inhibited

    @property
    def apicv(self) -> bool:
        return self.vapic is not None

    # --- register snapshots for the trace -------------------------------------------------------

    def registers(self) -> dict[str, Any]:
        """The interrupt state a reader needs to follow a step: IRR/ISR/PPR/TPR, and with APICv
        RVI/SVI/VPPR and PIR."""
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

    def record(self, kind: type[ev.Event], **fields: Any) -> None:
        """Record a `kind` event with `fields` and the register snapshot, unless the trace is not
        recording (then nothing is built: the snapshot is most of a step's cost)."""
        if self.trace.recording:
            self.trace.record(self.engine.now, kind, **fields, **self.registers())

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
            self.record(ev.Accept, vector=vector, source=source, path="posted")
            self._try_deliver()
            return
        result = lapic.accept(vector, level=level)
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

    # --- host side: VM entry (vcpu_enter_guest) -------------------------------------------------

    def vm_entry(self) -> None:
        """KVM_RUN → VM entry. With APICv: sync PIR into IRR, let the profile decide whether RVI
        is rewritten, then the CPU's PPR virtualization and evaluation (SDM §29.2.1)."""
        vapic = self.vapic
        if vapic is not None:
            max_irr = sync_pir_to_irr(vapic)
            if self._entry_writes_rvi(max_irr):
                vapic.rvi = max(max_irr, 0)  # vmx_set_rvi: -1 is written as 0
            self.req_event = False
            vapic.vm_entry()
        else:
            self.req_event = False
        self.in_guest = True
        self._try_deliver()

    def _entry_writes_rvi(self, max_irr: int) -> bool:
        """Whether this entry writes RVI = max(highest IRR, 0), era by era.

        Every era writes only `if (kvm_lapic_enabled(vcpu))`: from c7c9c56ca26f inside the
        KVM_REQ_EVENT block, from bf9f6ac8d749 before every entry, from b95234c84004 in
        vmx_sync_pir_to_irr. So while the APIC is software-disabled (as after a reset) entry
        leaves RVI alone. Up to 3.18 an empty IRR returned early (RVI kept); 4114c27d450b dropped
        that return outside guest mode, so from 3.19 an empty IRR writes RVI = 0."""
        p = self.profile
        if not self.lapic.software_enabled:
            return False
        if not (self.req_event or p.on(Sw.ENTRY_RVI_EVERY_ENTRY)):
            return False
        if not p.on(Sw.ENTRY_RVI_ON_REQ_EVENT):
            return False
        return max_irr >= 0 or p.on(Sw.ENTRY_RVI_ZERO_WHEN_IRR_EMPTY)

    def vm_exit(self) -> None:
        self.in_guest = False

    def set_apicv(self, active: bool) -> None:
        """Run-time APICv (de)activation, as `__kvm_vcpu_update_apicv` does when an inhibit is set
        or cleared (processed before the next entry). The VMCS keeps RVI and SVI while APICv is
        off; on activation KVM requests an event (RVI at the entry) and, from b2849bec936b, sets
        SVI to the highest ISR bit. Without that, SVI keeps its old value and the guest's next EOI
        clears the wrong VISR bit (SDM §29.1.2: EOI virtualization clears VISR[SVI])."""
        if active == (self.vapic is not None):
            return
        if active:
            vapic = self._parked_vapic or VirtualApic(self.lapic)
            self.vapic, self._parked_vapic = vapic, None
            if self.profile.on(Sw.ACTIVATION_UPDATES_SVI):
                vapic.svi = max(highest(self.lapic.isr), 0)
        else:
            self._parked_vapic, self.vapic = self.vapic, None
        self.req_event = True
        self.record(ev.ApicvChange, active=active)
        if self.in_guest:
            self.vm_entry()  # KVM_REQ_APICV_UPDATE: the vCPU exits and re-enters

    # --- host side: KVM_GET_LAPIC / KVM_SET_LAPIC -----------------------------------------------

    def kvm_get_lapic(self) -> LapicState:
        """KVM_GET_LAPIC (kvm_vcpu_ioctl_get_lapic): PIR is synced into IRR first, and the image
        carries the current count (kvm_apic_get_state writes APIC_TMCCT)."""
        if self.vapic is not None:
            sync_pir_to_irr(self.vapic)
        return self.lapic.to_page(self.engine.now)

    def kvm_set_lapic(self, image: LapicState) -> None:
        """KVM_SET_LAPIC (kvm_apic_set_state + kvm_apic_post_state_restore): the page becomes the
        image; SVI follows the highest ISR bit; what happens to RVI and PIR is the profile's."""
        before = self.registers() if self.trace.recording else {}
        vapic = self.vapic
        clears_pir = vapic is not None and self.profile.on(Sw.RESTORE_CLEARS_PIR)
        if clears_pir and self.profile.on(Sw.RESTORE_CLEARS_PIR_FIRST) and vapic is not None:
            vapic.pir, vapic.on = 0, False  # 9cfec6d097c6: vmx_apicv_pre_state_restore
        lapic = self.lapic
        # KVM restarts the timer from the image's current count (__start_apic_timer(apic,
        # APIC_TMCCT)): the count already elapsed is kept.
        remaining = lapic.load_page(image, self.engine.now)
        # In TSC-deadline mode the deadline is not in the image: KVM keeps its own until QEMU
        # writes IA32_TSC_DEADLINE with KVM_SET_MSRS after KVM_SET_LAPIC (kvm_put_tscdeadline_msr).
        self._restart_timer_after_restore(expired_one_shot=bool(lapic.timer_initial and not remaining))
        if clears_pir and not self.profile.on(Sw.RESTORE_CLEARS_PIR_FIRST) and vapic is not None:
            vapic.pir, vapic.on = 0, False  # 967235d32032: vmx_apicv_post_state_restore
        if vapic is not None:
            if self.profile.on(Sw.RESTORE_SETS_RVI) and not self.profile.on(
                Sw.RESTORE_RVI_WRITE_REMOVED
            ):
                vapic.rvi = max(highest(lapic.irr), 0)  # 4114c27d450b: hwapic_irr_update
            vapic.svi = max(highest(lapic.isr), 0)  # hwapic_isr_update
        self.req_event = True
        self.record(ev.SetLapic, before=before)

    def _restart_timer_after_restore(self, *, expired_one_shot: bool) -> None:
        """Restart the timer from the restored registers. A one-shot timer whose current count is
        0 has run out: with 8e6ed96cdd50 it fires at once; before, KVM re-armed it for a whole
        initial count (set_target_expiration took the period as the deadline), so it fired late.
        """
        lapic = self.lapic
        if lapic.timer_mode == TIMER_ONE_SHOT and expired_one_shot:
            if self.profile.on(Sw.RESTORE_FIRES_EXPIRED_ONESHOT):
                self.timer.stop()
                vector = lapic.timer_fire()
                if vector >= 0:
                    self.accept_irq(vector, source="lapic-timer")
                return
            lapic.timer_start_ns = self.engine.now
        self.timer.rearm()

    def reset_cpu(self) -> None:
        """The CPU side of a system reset: RFLAGS.IF = 0, out of any handler."""
        self.if_flag = False

    # --- guest side: the CPU operations a guest performs ---------------------------------------

    def sti(self) -> None:
        # Recorded so a timeline can show when the guest opened the window for delivery.
        self.trace.record(self.engine.now, ev.Sti)
        self.if_flag = True
        self._try_deliver()

    def cli(self) -> None:
        self.trace.record(self.engine.now, ev.Cli)
        self.if_flag = False

    def rdtsc(self) -> int:
        return self.tsc.read(self.engine.now)

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
                vapic.self_ipi_virtualization(value & 0xFF)
                self._try_deliver()
                return
        if offset == Reg.ICR_LOW and self.lapic.x2apic:
            effects = self.lapic.write_icr(value)  # x2APIC: one 64-bit ICR (SDM §10.12.9)
        else:
            effects = self.lapic.write(offset, value, self.engine.now)
        self._apply(effects)
        if offset == Reg.EOI:
            self.record(ev.Eoi)
        if vapic is not None:
            self.vm_entry()  # the write exited; re-entry re-evaluates
        else:
            self._try_deliver()

    def set_x2apic(self, on: bool) -> None:
        """Enter or leave x2APIC mode directly (the run's start, before the guest's first step)."""
        self.lapic.x2apic = on
        self.apic_base = self.apic_base | apic_base.EXTD if on else self.apic_base & ~apic_base.EXTD

    def guest_rdmsr(self, msr: int) -> int:
        """A guest RDMSR of an APIC MSR; GeneralProtection where the SDM raises #GP."""
        if msr == IA32_APIC_BASE:
            return self.apic_base
        if msr == IA32_TSC_DEADLINE:
            return self.lapic.read_msr(msr, self.engine.now)
        if not self.lapic.x2apic or not self.apic_base & apic_base.EN:
            # §10.12.1.2: the x2APIC MSRs exist only in x2APIC mode
            raise GeneralProtection(f"MSR {msr:#x}: the APIC is not in x2APIC mode")
        if offset_of_msr(msr) == Reg.PPR and self.vapic is not None:
            return self.vapic.vppr
        return self.lapic.read_msr(msr, self.engine.now)

    def guest_wrmsr(self, msr: int, value: int) -> None:
        """A guest WRMSR of an APIC MSR; GeneralProtection where the SDM raises #GP."""
        if msr == IA32_APIC_BASE:
            self._write_apic_base(value)
            return
        if msr == IA32_TSC_DEADLINE:
            self.write_msr(msr, value)
            return
        if not self.lapic.x2apic or not self.apic_base & apic_base.EN:
            raise GeneralProtection(f"MSR {msr:#x}: the APIC is not in x2APIC mode")
        self.lapic.check_msr_write(msr, value)
        self.write_msr(msr, value)

    def _write_apic_base(self, value: int) -> None:
        """§10.12.5: only the legal mode transitions; leaving the APIC disabled loses its state
        (§10.4.3 "may return to the state ... after power-up or reset": the model takes that
        branch) and entering x2APIC keeps it but for the logical ID, now derived (§10.12.10.2)."""
        transition = apic_base.check_write(self.apic_base, value)
        self.apic_base = value
        if transition.disables:
            self.timer.stop()
            self.lapic.init()
        self.lapic.x2apic = transition.new is apic_base.ApicMode.X2APIC
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

    # --- delivery at instruction boundaries ----------------------------------------------------

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

    def nmi(self, source: str) -> None:
        """An NMI (§10.6.1 delivery mode NMI; vol. 3A §6.7.1): taken whatever IF, TPR and PPR,
        through vector 2 whatever the ICR's vector field, and not through IRR/ISR. While its
        handler runs (until IRET) further NMIs are blocked, and one of them is held pending."""
        if self.wait_for_sipi:
            # a CPU waiting for SIPI runs nothing; the model drops the NMI (as KVM does)
            self.record(ev.Accept, vector=2, source=source, path="wait-for-sipi")
            return
        self.record(ev.Accept, vector=2, source=source, path="nmi")
        if self.nmi_running:
            self.nmi_pending = True
            return
        while True:
            self.nmi_running = True
            saved_if, self.if_flag = self.if_flag, False  # an interrupt gate clears IF
            self.idt(2)
            self.if_flag, self.nmi_running = saved_if, False
            self.delivered.fire()
            if not self.nmi_pending:
                break
            self.nmi_pending = False
        self._try_deliver()

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

    def _try_deliver(self) -> None:
        if self._delivering:
            return  # the handler runs with IF=0; its IRET re-checks below
        self._delivering = True
        try:
            while True:
                vector, irr_was_set = self._next_vector()
                if vector < 0:
                    return
                self.record(
                    ev.Deliver,
                    vector=vector,
                    via="virtual" if self.vapic else "inject",
                    irr_was_set=irr_was_set,
                )
                # An interrupt gate clears IF; the handler's IRET restores it.
                self.deliveries += 1
                self.if_flag = False
                self.idt(vector)
                self.if_flag = True
                self.delivered.fire()
        finally:
            self._delivering = False
