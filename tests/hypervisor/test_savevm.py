"""QEMU's savevm/loadvm on the model VM: what the snapshot keeps, and what each KVM does with an
expired one-shot timer and with a posted interrupt on the restore."""

from apiclab.arch.lapic import TIMER_MODE_SHIFT, TIMER_ONE_SHOT
from apiclab.arch.registers import Reg
from apiclab.engine.trace import Trace
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import get_profile

VECTOR = 0xEC


def _vm_with_one_shot(profile: str, *, apicv: bool) -> ModelVm:
    """A running VM whose one-shot timer (1 ms) has run half its count, interrupts off."""
    vm = ModelVm(get_profile(profile), apicv=apicv, tsc_hz=10**9, trace=Trace())
    vcpu = vm.vcpu
    vcpu.vm_entry()
    vcpu.apic_write(Reg.SVR, 0x1FF)
    vcpu.apic_write(Reg.TIMER_DIVIDE, 0b1011)
    vcpu.apic_write(Reg.LVT_TIMER, TIMER_ONE_SHOT << TIMER_MODE_SHIFT | VECTOR)
    vcpu.apic_write(Reg.TIMER_INITIAL, 1_000_000)
    vm.engine.run(until=500_000)
    return vm


def test_savevm_stops_the_vcpu_and_keeps_no_current_count() -> None:
    vm = _vm_with_one_shot("kvm-6.7", apicv=False)
    assert vm.vcpu.lapic.timer_current(vm.engine.now) == 500_000
    saved = vm.snapshot()
    assert saved.image.get(Reg.TIMER_CURRENT) == 0
    assert saved.image.get(Reg.TIMER_INITIAL) == 1_000_000 and saved.tsc_deadline == 0
    assert not vm.vcpu.in_guest and not vm.vcpu.timer.armed


def test_loadvm_fires_the_run_out_one_shot_at_once_from_8e6ed96cdd50() -> None:
    vm = _vm_with_one_shot("kvm-6.7", apicv=False)
    armed = vm.restore(vm.snapshot())
    assert not armed and vm.vcpu.lapic.irr >> VECTOR & 1


def test_loadvm_rearms_the_one_shot_for_a_whole_count_before_8e6ed96cdd50() -> None:
    vm = _vm_with_one_shot("kvm-4.11", apicv=False)
    armed = vm.restore(vm.snapshot())
    assert armed and not vm.vcpu.lapic.irr >> VECTOR & 1


def test_loadvm_on_kvm_63_with_apicv_wipes_the_interrupt_the_restore_fired() -> None:
    # 967235d32032 clears PIR after the timer restarted: the interrupt fired inside KVM_SET_LAPIC
    # is lost; 9cfec6d097c6 (kvm-6.7) clears first and keeps it
    lost = _vm_with_one_shot("kvm-6.3", apicv=True)
    assert not lost.restore(lost.snapshot())
    assert lost.vcpu.vapic is not None and not lost.vcpu.vapic.pir >> VECTOR & 1
    assert not lost.vcpu.lapic.irr >> VECTOR & 1
    kept = _vm_with_one_shot("kvm-6.7", apicv=True)
    kept.restore(kept.snapshot())
    assert kept.vcpu.vapic is not None
    assert (kept.vcpu.vapic.pir | kept.vcpu.lapic.irr) >> VECTOR & 1
