"""Every ioctl wrapper against the real kernel: each test checks what the kernel answers."""

from __future__ import annotations

import errno
import mmap

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.ioctls import KvmError
from apiclab.backends.kvm.machine import CPUID_X2APIC, guest_cpuid, pc_gsi_routes
from apiclab.backends.kvm.system import Kvm
from apiclab.backends.kvm.tracefs import TraceCapture, TraceUnavailable
from apiclab.backends.kvm.vm import GuestMemory
from apiclab.hypervisor.machine import reset_image


def test_api_version_is_the_stable_12(kvm: Kvm) -> None:
    assert kvm.get_api_version() == 12


def test_check_extension_knows_irqchip_and_not_a_made_up_capability(kvm: Kvm) -> None:
    assert kvm.check_extension(nr.KVM_CAP_IRQCHIP) >= 1
    assert kvm.check_extension(nr.KVM_CAP_NR_MEMSLOTS) > 1  # a count, not a flag
    assert kvm.check_extension(0x7FFF_FFFF) == 0


def test_vcpu_mmap_size_holds_kvm_run_and_is_whole_pages(kvm: Kvm) -> None:
    size = kvm.get_vcpu_mmap_size()
    assert size >= 2352 and size % mmap.PAGESIZE == 0


def test_supported_cpuid_has_leaves_0_and_1_and_guest_cpuid_exposes_x2apic(kvm: Kvm) -> None:
    leaves = {e.function for e in kvm.get_supported_cpuid()}
    assert {0, 1} <= leaves
    leaf1 = next(e for e in guest_cpuid(kvm) if e.function == 1)
    assert leaf1.ecx & CPUID_X2APIC


def test_memory_region_rejects_an_unaligned_guest_address_with_einval(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, GuestMemory(0x1000) as mem:
        vm.set_user_memory_region(0, 0x10000, mem)
        with pytest.raises(KvmError) as err:
            vm.set_user_memory_region(1, 0x20001, mem)
        assert err.value.errno == errno.EINVAL
        assert err.value.ioctl == "KVM_SET_USER_MEMORY_REGION"


def test_second_irqchip_is_refused_with_eexist(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with pytest.raises(KvmError) as err:
            vm.create_irqchip()
        assert err.value.errno == errno.EEXIST


def test_second_pit_is_refused_with_eexist_and_the_pc_routing_is_accepted(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        vm.create_pit2()
        with pytest.raises(KvmError) as err:
            vm.create_pit2()
        assert err.value.errno == errno.EEXIST
        vm.set_gsi_routing(pc_gsi_routes())


def test_gsi_routing_to_a_missing_ioapic_pin_is_refused_with_einval(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with pytest.raises(KvmError) as err:
            vm.set_gsi_routing([(0, s.KVM_IRQCHIP_IOAPIC, 200)])
        assert err.value.errno == errno.EINVAL


def test_pc_routes_send_isa_irq0_to_ioapic_pin_2_and_keep_the_cascade_free() -> None:
    routes = pc_gsi_routes()
    ioapic = {gsi: pin for gsi, chip, pin in routes if chip == s.KVM_IRQCHIP_IOAPIC}
    assert ioapic[0] == 2 and 2 not in ioapic and ioapic[5] == 5 and len(ioapic) == 23
    assert (2, s.KVM_IRQCHIP_PIC_MASTER, 2) not in routes
    assert (8, s.KVM_IRQCHIP_PIC_SLAVE, 0) in routes


def test_new_vcpu_is_in_the_reset_state(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
        assert (regs.rip, sregs.cs.selector, sregs.cs.base) == (0xFFF0, 0xF000, 0xFFFF0000)
        assert sregs.cr0 == 0x60000010  # SDM §9.1.1 Table 9-1


def test_regs_and_sregs_round_trip(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        regs = vcpu.get_regs()
        regs.rax, regs.rsp = 0x1234_5678_9ABC, 0x7000
        vcpu.set_regs(regs)
        sregs = vcpu.get_sregs()
        sregs.ds.selector, sregs.ds.base = 0x40, 0x400
        vcpu.set_sregs(sregs)
        back, sback = vcpu.get_regs(), vcpu.get_sregs()
        assert (back.rax, back.rsp) == (0x1234_5678_9ABC, 0x7000)
        assert (sback.ds.selector, sback.ds.base) == (0x40, 0x400)


def test_msrs_set_and_get(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        assert vcpu.set_msrs({0x174: 0x10}) == 1  # IA32_SYSENTER_CS
        assert vcpu.get_msrs([0x174])[0x174] == 0x10


def test_set_cpuid2_is_accepted_and_refuses_garbage_leaf_count(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        vcpu.set_cpuid2(guest_cpuid(kvm))
        with pytest.raises(KvmError) as err:
            vcpu.set_cpuid2([s.KvmCpuidEntry2()] * 300)  # more than KVM_MAX_CPUID_ENTRIES
        assert err.value.errno == errno.E2BIG


def test_tsc_khz_is_a_plausible_frequency(kvm: Kvm) -> None:
    with kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        assert 100_000 < vcpu.get_tsc_khz() < 10_000_000


def test_lapic_image_round_trips_through_the_kernel_and_kvm_derives_ppr(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with vm.create_vcpu(0) as vcpu:
            fresh = vcpu.get_lapic()
            assert fresh.get(Reg.LVT_LINT0) == 0x700 and fresh.get(Reg.SVR) == 0xFF
            image = reset_image()
            image.set(Reg.SVR, 0x1FF)
            image.set(Reg.TPR, 0x20)
            image.isr = 1 << 0xE1
            image.irr = 1 << 0x51
            vcpu.set_lapic(image)
            back = vcpu.get_lapic()
            assert back.isr == 1 << 0xE1 and back.irr == 1 << 0x51
            assert back.get(Reg.TPR) == 0x20 and back.get(Reg.SVR) == 0x1FF
            # SDM §10.8.3.1 says PPR = 0xE0 (ISRV class above TPR's). Read back right after the
            # restore, KVM may still show 0x20: kvm_apic_set_state() runs apic_update_ppr()
            # before kvm_apic_update_apicv() refreshes its ISR cache (seen here, docs/kvm.md).
            assert back.get(Reg.PPR) in (0x20, 0xE0)
            vcpu.set_lapic(image)  # the cache now holds 0xE1: PPR comes out right
            assert vcpu.get_lapic().get(Reg.PPR) == 0xE0


def test_signal_msi_reaches_irr_only_once_the_apic_is_enabled(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with vm.create_vcpu(0) as vcpu:
            assert vm.signal_msi(0xFEE00000, 0x40) == 0  # SVR software-disabled: refused
            image = vcpu.get_lapic()
            image.set(Reg.SVR, 0x1FF)
            vcpu.set_lapic(image)
            assert vm.signal_msi(0xFEE00000, 0x40) == 1
            assert vcpu.get_lapic().irr == 1 << 0x40


def test_irq_line_drives_the_in_kernel_irqchip(kvm: Kvm) -> None:
    try:
        with TraceCapture(events=("kvm_set_irq",)) as capture, kvm.create_vm() as vm:
            vm.create_irqchip()
            vm.irq_line(4, 1)
            vm.irq_line(4, 0)
    except TraceUnavailable as e:
        pytest.skip(f"tracefs not usable: {e}")
    mine = [e.message for e in capture.events if e.own and e.event == "kvm_set_irq"]
    assert any(m.startswith("gsi 4 level 1") for m in mine), mine
    assert any(m.startswith("gsi 4 level 0") for m in mine), mine


def test_vm_ioctl_on_a_closed_vm_raises_ebadf(kvm: Kvm) -> None:
    vm = kvm.create_vm()
    fd = vm.fd
    vm.close()
    with pytest.raises(KvmError) as err:
        nr.ioctl(fd, nr.KVM_CREATE_IRQCHIP)
    assert err.value.errno == errno.EBADF


def test_model_reset_image_matches_a_fresh_kvm_vcpu(kvm: Kvm) -> None:
    """The image the cases push as 'clean reset' is what KVM itself has after vCPU creation,
    LVT CMCI included: KVM reports 5 LVT entries (version 0x50014) and QEMU's APIC has no CMCI,
    so that slot (0x2F0) is 0 in both."""
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with vm.create_vcpu(0) as vcpu:
            fresh = vcpu.get_lapic().regs
    model = reset_image().regs
    differ = {hex(off) for off in model if model[off] != fresh.get(off, 0)}
    assert differ == set()


def test_vm_check_extension_and_set_tss_addr(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        assert vm.check_extension(nr.KVM_CAP_IRQCHIP) >= 1
        assert vm.check_extension(0x7FFF_FFFF) == 0
        vm.set_tss_addr(0xFFFBD000)  # accepted before the first vCPU (api.rst §4.48)
