"""The state key a scenario reports at a checkpoint: everything of the vCPU that the rest of the
run can depend on (the APIC page, the VMX virtual-APIC state, RFLAGS.IF, KVM's pending request).

Two runs reaching the same key at a checkpoint continue identically for the same later draws, so
the search explores the later draws once (duplicate-state pruning). Times are not part of the
key: the scenarios schedule everything after a checkpoint relative to it.
"""

from __future__ import annotations

from collections.abc import Hashable

from apiclab.hypervisor.kvm import KvmVcpu


def vcpu_state_key(vcpu: KvmVcpu) -> Hashable:
    lapic = vcpu.lapic
    key: tuple[Hashable, ...] = (
        lapic.irr, lapic.isr, lapic.tmr, lapic.tpr, lapic.svr,
        # the LVT entries in the dict's order: LocalApic.reset creates that dict once and later
        # writes only change values, so equal states list them alike (and a different order could
        # only merge fewer states, never more)
        tuple(lapic.lvt.items()), lapic.timer_initial, lapic.timer_divide,
        lapic.timer_ran_out, lapic.error_armed, lapic.esr,
        vcpu.if_flag, vcpu.in_guest, vcpu.req_event, vcpu.timer.armed,
        vcpu.apic_base, vcpu.nmi_running, vcpu.nmi_pending,
    )
    vapic = vcpu.vapic
    if vapic is not None:
        key += (vapic.rvi, vapic.svi, vapic.vppr, vapic.pir, vapic.on, vapic.recognized)
    return key
