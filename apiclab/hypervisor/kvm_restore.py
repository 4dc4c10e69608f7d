"""KVM's restore path per profile: KVM_GET_LAPIC and KVM_SET_LAPIC, which a QEMU system reset,
a loadvm and a migration all take (docs/design.md §3) — what each kernel does to RVI, SVI, PIR
and the LAPIC timer when a register image replaces the APIC's state.

KVM sources (`arch/x86/kvm/lapic.c`, `vmx.c`): `kvm_vcpu_ioctl_get_lapic`, `kvm_apic_get_state`,
`kvm_apic_set_state`, `kvm_apic_post_state_restore`, `vmx_apicv_pre_state_restore` /
`vmx_apicv_post_state_restore`, `__start_apic_timer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from apiclab.arch.lapic import TIMER_ONE_SHOT
from apiclab.arch.lapic_state import LapicState
from apiclab.arch.vectors import highest
from apiclab.engine import events as ev
from apiclab.hypervisor.kvm_entry import sync_pir_to_irr
from apiclab.hypervisor.profiles import Sw

if TYPE_CHECKING:
    from apiclab.hypervisor.kvm import KvmVcpu


# The switches this module asks about, read once, and asked of `Profile.on_switches` directly
# (what `Profile.on` answers, without its type check of the argument): compiled code
# (`apiclab.native`) would look each `Sw` member up through the enum's metaclass at every call,
# and call the interpreted `on` — ~0.6 µs, six times a reboot.
_RESTORE_CLEARS_PIR: Final = Sw.RESTORE_CLEARS_PIR
_RESTORE_CLEARS_PIR_FIRST: Final = Sw.RESTORE_CLEARS_PIR_FIRST
_RESTORE_FIRES_EXPIRED_ONESHOT: Final = Sw.RESTORE_FIRES_EXPIRED_ONESHOT
_RESTORE_RVI_WRITE_REMOVED: Final = Sw.RESTORE_RVI_WRITE_REMOVED
_RESTORE_SETS_RVI: Final = Sw.RESTORE_SETS_RVI


def kvm_get_lapic(vcpu: KvmVcpu) -> LapicState:
    """KVM_GET_LAPIC (kvm_vcpu_ioctl_get_lapic): PIR is synced into IRR first, and the image
    carries the current count (kvm_apic_get_state writes APIC_TMCCT)."""
    if vcpu.vapic is not None:
        sync_pir_to_irr(vcpu.vapic)
    return vcpu.lapic.to_page(vcpu.engine.now)


def kvm_set_lapic(vcpu: KvmVcpu, image: LapicState) -> None:
    """KVM_SET_LAPIC (kvm_apic_set_state + kvm_apic_post_state_restore): the page becomes the
    image; SVI follows the highest ISR bit; what happens to RVI and PIR is the profile's."""
    before = vcpu.registers() if vcpu.trace.recording else {}
    vapic = vcpu.vapic
    profile = vcpu.profile
    on = profile.on_switches
    clears_pir = vapic is not None and _RESTORE_CLEARS_PIR in on
    if clears_pir and _RESTORE_CLEARS_PIR_FIRST in on and vapic is not None:
        vapic.pir, vapic.on = 0, False  # 9cfec6d097c6: vmx_apicv_pre_state_restore
    lapic = vcpu.lapic
    # KVM restarts the timer from the image's current count (__start_apic_timer(apic,
    # APIC_TMCCT)): the count already elapsed is kept.
    remaining = lapic.load_page(image, vcpu.engine.now)
    # In TSC-deadline mode the deadline is not in the image: KVM keeps its own until QEMU
    # writes IA32_TSC_DEADLINE with KVM_SET_MSRS after KVM_SET_LAPIC (kvm_put_tscdeadline_msr).
    restart_timer_after_restore(vcpu, expired_one_shot=bool(lapic.timer_initial and not remaining))
    if clears_pir and _RESTORE_CLEARS_PIR_FIRST not in on and vapic is not None:
        vapic.pir, vapic.on = 0, False  # 967235d32032: vmx_apicv_post_state_restore
    if vapic is not None:
        if _RESTORE_SETS_RVI in on and _RESTORE_RVI_WRITE_REMOVED not in on:
            vapic.rvi = max(highest(lapic.irr), 0)  # 4114c27d450b: hwapic_irr_update
        vapic.svi = max(highest(lapic.isr), 0)  # hwapic_isr_update
    vcpu.req_event = True
    if vcpu.trace.recording:
        vcpu.record(ev.SetLapic, before=before)


def restart_timer_after_restore(vcpu: KvmVcpu, *, expired_one_shot: bool) -> None:
    """Restart the timer from the restored registers. A one-shot timer whose current count is
    0 has run out: with 8e6ed96cdd50 it fires at once; before, KVM re-armed it for a whole
    initial count (set_target_expiration took the period as the deadline), so it fired late.
    """
    lapic = vcpu.lapic
    if lapic.timer_mode == TIMER_ONE_SHOT and expired_one_shot:
        if _RESTORE_FIRES_EXPIRED_ONESHOT in vcpu.profile.on_switches:
            vcpu.timer.stop()
            vector = lapic.timer_fire()
            if vector >= 0:
                vcpu.accept_irq(vector, source="lapic-timer")
            return
        lapic.timer_start_ns = vcpu.engine.now
    vcpu.timer.rearm()
