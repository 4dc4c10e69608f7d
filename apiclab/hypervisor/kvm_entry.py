"""KVM's VM entry with APICv, per profile: the PIR sync, whether entry rewrites RVI (era by era),
and run-time APICv (de)activation with what it does to SVI.

KVM sources (`arch/x86/kvm/x86.c`, `vmx.c`): `vcpu_enter_guest` (KVM_REQ_EVENT,
`hwapic_irr_update`), `vmx_sync_pir_to_irr`, `__kvm_vcpu_update_apicv`. KVM policy, not SDM rules:
the CPU's own evaluation and posted-interrupt processing (SDM §29.2.1, §29.6) are `arch.vmx`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from apiclab.arch.vectors import highest
from apiclab.arch.vmx import VirtualApic
from apiclab.engine import events as ev
from apiclab.hypervisor.profiles import Sw

if TYPE_CHECKING:
    from apiclab.hypervisor.kvm import KvmVcpu


# The switches this module asks about, read once, and asked of `Profile.on_switches` directly
# (what `Profile.on` answers, without its type check of the argument): compiled code
# (`apiclab.native`) would look each `Sw` member up through the enum's metaclass at every call,
# and call the interpreted `on` — ~0.6 µs, six times a reboot.
_ACTIVATION_UPDATES_SVI: Final = Sw.ACTIVATION_UPDATES_SVI
_ENTRY_RVI_EVERY_ENTRY: Final = Sw.ENTRY_RVI_EVERY_ENTRY
_ENTRY_RVI_ON_REQ_EVENT: Final = Sw.ENTRY_RVI_ON_REQ_EVENT
_ENTRY_RVI_ZERO_WHEN_IRR_EMPTY: Final = Sw.ENTRY_RVI_ZERO_WHEN_IRR_EMPTY


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


def vm_entry(vcpu: KvmVcpu) -> None:
    """KVM_RUN → VM entry. With APICv: sync PIR into IRR, let the profile decide whether RVI
    is rewritten, then the CPU's PPR virtualization and evaluation (SDM §29.2.1)."""
    vapic = vcpu.vapic
    if vapic is not None:
        max_irr = sync_pir_to_irr(vapic)
        if entry_writes_rvi(vcpu, max_irr):
            vapic.rvi = max(max_irr, 0)  # vmx_set_rvi: -1 is written as 0
        vcpu.req_event = False
        vapic.vm_entry()
    else:
        vcpu.req_event = False
    vcpu.in_guest = True
    vcpu._try_deliver()


def entry_writes_rvi(vcpu: KvmVcpu, max_irr: int) -> bool:
    """Whether this entry writes RVI = max(highest IRR, 0), era by era.

    Every era writes only `if (kvm_lapic_enabled(vcpu))`: from c7c9c56ca26f inside the
    KVM_REQ_EVENT block, from bf9f6ac8d749 before every entry, from b95234c84004 in
    vmx_sync_pir_to_irr. So while the APIC is software-disabled (as after a reset) entry
    leaves RVI alone. Up to 3.18 an empty IRR returned early (RVI kept); 4114c27d450b dropped
    that return outside guest mode, so from 3.19 an empty IRR writes RVI = 0."""
    p = vcpu.profile
    if not vcpu.lapic.software_enabled:
        return False
    if not (vcpu.req_event or _ENTRY_RVI_EVERY_ENTRY in p.on_switches):
        return False
    if _ENTRY_RVI_ON_REQ_EVENT not in p.on_switches:
        return False
    return max_irr >= 0 or _ENTRY_RVI_ZERO_WHEN_IRR_EMPTY in p.on_switches


def set_apicv(vcpu: KvmVcpu, active: bool) -> None:
    """Run-time APICv (de)activation, as `__kvm_vcpu_update_apicv` does when an inhibit is set
    or cleared (processed before the next entry). The VMCS keeps RVI and SVI while APICv is
    off; on activation KVM requests an event (RVI at the entry) and, from b2849bec936b, sets
    SVI to the highest ISR bit. Without that, SVI keeps its old value and the guest's next EOI
    clears the wrong VISR bit (SDM §29.1.2: EOI virtualization clears VISR[SVI])."""
    if active == (vcpu.vapic is not None):
        return
    if active:
        vapic = vcpu._parked_vapic or VirtualApic(vcpu.lapic)
        vcpu.vapic, vcpu._parked_vapic = vapic, None
        if _ACTIVATION_UPDATES_SVI in vcpu.profile.on_switches:
            vapic.svi = max(highest(vcpu.lapic.isr), 0)
    else:
        vcpu._parked_vapic, vcpu.vapic = vcpu.vapic, None
    vcpu.req_event = True
    vcpu.record(ev.ApicvChange, active=active)
    if vcpu.in_guest:
        vcpu.vm_entry()  # KVM_REQ_APICV_UPDATE: the vCPU exits and re-enters
