"""The KVM restore path per profile: what KVM_SET_LAPIC does to RVI, SVI and PIR."""

from apiclab.engine.core import Engine
from apiclab.engine.trace import Trace
from apiclab.hypervisor.kvm import KvmVcpu
from apiclab.hypervisor.machine import ModelVm, reset_image
from apiclab.hypervisor.profiles import PROFILES, SWITCHES, get_profile
from apiclab.platform.tsc import Tsc


def vcpu(profile: str) -> KvmVcpu:
    return KvmVcpu(Engine(), Trace(), get_profile(profile), apicv=True, tsc=Tsc(10**9))


def test_kvm_317_keeps_rvi_across_set_lapic():
    v = vcpu("kvm-3.17")
    assert v.vapic is not None
    v.vapic.rvi = 0xE1
    v.lapic.isr = 1 << 0x81
    v.kvm_set_lapic(reset_image())
    assert v.vapic.rvi == 0xE1 and v.vapic.svi == 0 and v.lapic.irr == 0


def test_kvm_319_resets_rvi_from_the_restored_irr():
    v = vcpu("kvm-3.19")
    assert v.vapic is not None
    v.vapic.rvi = 0xE1
    image = reset_image()
    v.kvm_set_lapic(image)
    assert v.vapic.rvi == 0
    image.irr = 1 << 0x41
    v.kvm_set_lapic(image)
    assert v.vapic.rvi == 0x41


def test_kvm_317_entry_does_not_touch_rvi_while_the_apic_is_disabled():
    v = vcpu("kvm-3.17")
    assert v.vapic is not None
    v.vapic.rvi = 0xE1
    v.kvm_set_lapic(reset_image())  # SVR = 0xFF: software-disabled
    v.vm_entry()
    assert v.vapic.rvi == 0xE1 and v.vapic.recognized


def _enabled_vcpu(profile: str, rvi: int) -> KvmVcpu:
    v = vcpu(profile)
    assert v.vapic is not None
    v.lapic.write(0xF0, 0x1FF, now=0)  # software-enable (SVR), no exit modelled
    v.vapic.rvi = rvi
    v.req_event = False
    return v


def test_entry_rewrites_rvi_only_on_kvm_req_event_before_4_4():
    for name, rewritten in (("kvm-3.19", False), ("kvm-4.4", True), ("kvm-6.14", True)):
        v = _enabled_vcpu(name, 0xE1)
        v.vm_entry()
        assert v.vapic is not None and (v.vapic.rvi == 0) is rewritten, name


def test_entry_with_an_empty_irr_writes_rvi_zero_from_3_19():
    for name, zeroed in (("kvm-3.18", False), ("kvm-3.19", True)):
        v = _enabled_vcpu(name, 0xE1)
        v.req_event = True
        v.vm_entry()
        assert v.vapic is not None and (v.vapic.rvi == 0) is zeroed, name


def test_no_era_writes_rvi_at_entry_while_the_apic_is_software_disabled():
    for name in ("kvm-3.19", "kvm-4.4", "kvm-4.11", "kvm-6.14"):
        v = vcpu(name)
        assert v.vapic is not None and not v.lapic.software_enabled
        v.vapic.rvi = 0xE1
        v.req_event = True
        v.vm_entry()
        assert v.vapic.rvi == 0xE1, name


def test_from_6_14_a_reset_leaves_rvi_stale_until_the_apic_is_enabled():
    from apiclab.arch.registers import Reg

    for name, stale in (("kvm-6.7", False), ("kvm-6.14", True)):
        m = ModelVm(get_profile(name), apicv=True, tsc_hz=10**9, trace=Trace())
        vapic = m.vcpu.vapic
        assert vapic is not None
        m.vcpu.vm_entry()
        m.vcpu.apic_write(Reg.SVR, 0x1FF)
        m.vcpu.accept_irq(0xE1)  # pending while IF = 0
        m.system_reset()
        m.vcpu.vm_entry()
        assert (vapic.rvi == 0xE1) is stale, name
        m.vcpu.apic_write(Reg.SVR, 0x1FF)  # the write exits; the next entry syncs
        assert vapic.rvi == 0, name


def test_a_misspelt_switch_is_an_error():
    import pytest

    with pytest.raises(TypeError):
        get_profile("kvm-6.14").on("restore_sets_rvi")  # type: ignore[arg-type]


def test_kvm_411_restore_clears_posted_interrupts():
    for name, cleared in (("kvm-3.19", False), ("kvm-4.11", True)):
        v = vcpu(name)
        assert v.vapic is not None
        v.vapic.post(0x70)
        v.kvm_set_lapic(reset_image())
        assert (v.vapic.pir == 0) is cleared


def test_stale_rvi_is_delivered_at_the_first_sti_after_reset_on_kvm_317_only():
    for name, stale in (("kvm-3.17", True), ("kvm-3.19", False)):
        m = ModelVm(get_profile(name), apicv=True, tsc_hz=10**9, trace=Trace())
        seen = []
        m.vcpu.idt = seen.append
        m.vcpu.vm_entry()
        m.vcpu.lapic.write(0xF0, 0x1FF, now=0)
        m.vcpu.accept_irq(0xE1)  # pending while IF = 0
        m.system_reset()
        m.vcpu.sti()
        assert (seen == [0xE1]) is stale
        if stale:
            assert m.vcpu.lapic.isr == 1 << 0xE1 and m.vcpu.lapic.irr == 0


def test_every_profile_switch_cites_a_commit():
    for switch in SWITCHES.values():
        assert len(switch.introduced_by.commit) == 12 and switch.introduced_by.title
    assert set(PROFILES) >= {"kvm-3.17", "kvm-3.19", "kvm-4.11", "kvm-6.7", "kvm-6.14"}


def _expired_one_shot_image():
    from apiclab.arch.registers import Reg

    image = reset_image()
    image.set(Reg.SVR, 0x1FF)
    image.set(Reg.LVT_TIMER, 0xEC)  # one-shot, unmasked
    image.set(Reg.TIMER_INITIAL, 1000)
    image.set(Reg.TIMER_CURRENT, 0)  # it ran out before the snapshot was taken
    return image


def test_expired_one_shot_fires_at_once_from_v6_3_and_a_period_late_before():
    for name, at_once in (("kvm-4.11", False), ("kvm-6.3", True)):
        m = ModelVm(get_profile(name), apicv=False, tsc_hz=10**9, trace=Trace())
        m.vcpu.kvm_set_lapic(_expired_one_shot_image())
        assert bool(m.vcpu.lapic.irr >> 0xEC & 1) is at_once
        m.engine.run(until=2 * 1000 * 2)  # two initial counts at 2 ns a count
        assert m.vcpu.lapic.irr >> 0xEC & 1


def test_get_lapic_syncs_pir_and_carries_the_current_count():
    from apiclab.arch.registers import Reg

    v = vcpu("kvm-6.7")
    assert v.vapic is not None
    v.lapic.write(Reg.SVR, 0x1FF, now=0)
    v.lapic.write(Reg.TIMER_INITIAL, 1000, now=0)
    v.vapic.post(0x70)
    image = v.kvm_get_lapic()
    assert image.irr == 1 << 0x70 and v.vapic.pir == 0
    assert image.get(Reg.TIMER_CURRENT) == 1000


def test_timer_interrupt_fired_by_restore_is_wiped_by_late_pir_clear_on_v6_3_only():
    for name, survives in (("kvm-6.3", False), ("kvm-6.7", True)):
        v = vcpu(name)
        assert v.vapic is not None
        v.kvm_set_lapic(_expired_one_shot_image())
        v.vm_entry()
        assert bool(v.lapic.irr >> 0xEC & 1) is survives


def test_level_triggered_eoi_reaches_the_ioapic_with_and_without_apicv():
    from apiclab.arch.ioapic import RTE_LEVEL
    from apiclab.arch.registers import Reg

    for apicv in (False, True):
        m = ModelVm(get_profile("kvm-6.14"), apicv=apicv, tsc_hz=10**9, trace=Trace())
        seen = []
        m.vcpu.idt = seen.append
        m.vcpu.vm_entry()
        m.vcpu.apic_write(Reg.SVR, 0x1FF)
        m.ioapic.set_redirection(9, RTE_LEVEL | 0x39)
        m.irq_line(9, True)
        assert m.ioapic.remote_irr(9)
        m.vcpu.sti()
        assert seen == [0x39]
        m.irq_line(9, False)
        m.vcpu.apic_write(Reg.EOI, 0)
        assert not m.ioapic.remote_irr(9), f"remote IRR stuck with apicv={apicv}"


def test_apicv_activation_sets_svi_from_the_isr_from_6_19_only():
    from apiclab.arch.registers import Reg

    for name, retired in (("kvm-6.14", False), ("kvm-6.19", True)):
        m = ModelVm(get_profile(name), apicv=True, tsc_hz=10**9, trace=Trace())
        vcpu = m.vcpu
        vcpu.vm_entry()
        vcpu.apic_write(Reg.SVR, 0x1FF)
        vcpu.set_apicv(False)  # inhibited: the next interrupt is injected, ISR set in KVM's page

        def handler(vector: int, vcpu: KvmVcpu = vcpu) -> None:
            vcpu.set_apicv(True)  # the inhibit is cleared while the handler runs
            vcpu.apic_write(Reg.EOI, 0)

        vcpu.idt = handler
        vcpu.sti()
        vcpu.accept_irq(0x61)
        assert vcpu.vapic is not None
        assert (vcpu.lapic.isr == 0) is retired, name
