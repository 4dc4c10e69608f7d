"""QEMU's savevm and loadvm of the model VM, as far as the local APIC goes.

What QEMU carries across (hw/i386/kvm/apic.c `kvm_get_apic_state` / `kvm_put_apic_state`,
target/i386/kvm/kvm.c `kvm_put_tscdeadline_msr`): the register page from KVM_GET_LAPIC, but with
no current count — TMCCT goes back as 0, so KVM restarts a one-shot timer as if its count had run
out (`set_target_expiration`) — and the TSC-deadline MSR, written with KVM_SET_MSRS after
KVM_SET_LAPIC. What KVM then does with the image is the profile's (`kvm_restore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_TSC_DEADLINE, Reg

if TYPE_CHECKING:
    from apiclab.hypervisor.machine import ModelVm


@dataclass(frozen=True)
class VmSnapshot:
    """The APIC state savevm keeps: the register page (TMCCT = 0) and the TSC-deadline MSR
    (0: none armed)."""

    image: LapicState
    tsc_deadline: int


def savevm(vm: ModelVm) -> VmSnapshot:
    """Stop the vCPU (it leaves the guest, its timer stops) and keep its APIC state."""
    vcpu = vm.vcpu
    vcpu.vm_exit()
    vcpu.timer.stop()
    image = vcpu.kvm_get_lapic()
    image.set(Reg.TIMER_CURRENT, 0)  # QEMU keeps no current count: it puts TMCCT back as 0
    return VmSnapshot(image, vcpu.lapic.tsc_deadline)


def loadvm(vm: ModelVm, snapshot: VmSnapshot) -> bool:
    """Put the APIC state back: KVM_SET_LAPIC with the image, then the TSC deadline if one was
    armed. The vCPU stays stopped (`vcpu.vm_entry()` resumes it). Returns whether the LAPIC
    timer is armed afterwards — the restore may have fired it instead, or lost it."""
    vcpu = vm.vcpu
    vcpu.kvm_set_lapic(snapshot.image)
    if snapshot.tsc_deadline:
        vcpu.write_msr(IA32_TSC_DEADLINE, snapshot.tsc_deadline)  # kvm_put_tscdeadline_msr
    return vcpu.timer.armed
