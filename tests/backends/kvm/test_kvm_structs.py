"""The ctypes layouts and ioctl numbers against the kernel ABI (include/uapi/linux/kvm.h,
arch/x86/include/uapi/asm/kvm.h). A wrong size changes the ioctl number and the kernel answers
ENOTTY, so the wrapper tests with /dev/kvm check the same thing against the real kernel."""

from __future__ import annotations

import ctypes

import pytest

from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s


@pytest.mark.parametrize(
    ("struct", "size"),
    [
        (s.KvmRegs, 144),
        (s.KvmSregs, 312),
        (s.KvmSegment, 24),
        (s.KvmDtable, 16),
        (s.KvmUserspaceMemoryRegion, 32),
        (s.KvmIrqLevel, 8),
        (s.KvmMsi, 32),
        (s.KvmCpuidEntry2, 40),
        (s.KvmCpuid2, 8),
        (s.KvmMsrEntry, 16),
        (s.KvmMsrs, 8),
        (s.KvmLapicState, 1024),
        (s.KvmPitConfig, 64),
        (s.KvmCoalescedMmioZone, 16),
        (s.KvmCoalescedMmio, 24),
        (s.KvmCoalescedMmioRing, 8),
        (s.KvmIrqchip, 520),
        (s.KvmVcpuEvents, 64),
        (s.KvmIrqRoutingEntry, 48),  # 16 + the 32-byte union
        (s.KvmIrqRouting, 8),
        (s.KvmRunHeader, 32),
        (s.KvmRun, 2352),  # 32 + 256 (exit union) + 16 + 2048 (sync regs)
    ],
)
def test_struct_has_the_kernel_size(struct: type[ctypes.Structure], size: int) -> None:
    assert ctypes.sizeof(struct) == size


def test_kvm_run_fields_sit_where_the_kernel_puts_them() -> None:
    assert s.KvmRunHeader.immediate_exit.offset == 1
    assert s.KvmRunHeader.exit_reason.offset == 8
    assert s.KvmRun.exit.offset == s.KVM_RUN_UNION_OFFSET == 32
    assert s.KvmRun.kvm_valid_regs.offset == 288
    assert s.KvmRunIo.data_offset.offset == 8
    assert s.KvmSregs.cr0.offset == 8 * 24 + 2 * 16
    assert s.KvmSregs.interrupt_bitmap.offset == 280


def test_trailing_array_structs_grow_by_their_entries() -> None:
    assert ctypes.sizeof(s.cpuid2(3)) == 8 + 3 * 40
    buf = s.msrs([(0x174, 5), (0x6E0, 7)])
    assert ctypes.sizeof(buf) == 8 + 2 * 16
    assert (buf.nmsrs, buf.entries[1].index, buf.entries[1].data) == (2, 0x6E0, 7)


@pytest.mark.parametrize(
    ("name", "number"),
    [  # the values every VMM hard-codes (e.g. rust-vmm kvm-ioctls, QEMU's linux-headers)
        ("KVM_GET_API_VERSION", 0xAE00),
        ("KVM_CREATE_VM", 0xAE01),
        ("KVM_CHECK_EXTENSION", 0xAE03),
        ("KVM_GET_VCPU_MMAP_SIZE", 0xAE04),
        ("KVM_GET_SUPPORTED_CPUID", 0xC008AE05),
        ("KVM_CREATE_VCPU", 0xAE41),
        ("KVM_SET_USER_MEMORY_REGION", 0x4020AE46),
        ("KVM_CREATE_IRQCHIP", 0xAE60),
        ("KVM_IRQ_LINE", 0x4008AE61),
        ("KVM_GET_IRQCHIP", 0xC208AE62),
        ("KVM_SET_IRQCHIP", 0x8208AE63),
        ("KVM_REGISTER_COALESCED_MMIO", 0x4010AE67),
        ("KVM_SET_GSI_ROUTING", 0x4008AE6A),
        ("KVM_CREATE_PIT2", 0x4040AE77),
        ("KVM_RUN", 0xAE80),
        ("KVM_GET_REGS", 0x8090AE81),
        ("KVM_SET_REGS", 0x4090AE82),
        ("KVM_GET_SREGS", 0x8138AE83),
        ("KVM_SET_SREGS", 0x4138AE84),
        ("KVM_GET_MSRS", 0xC008AE88),
        ("KVM_SET_MSRS", 0x4008AE89),
        ("KVM_GET_LAPIC", 0x8400AE8E),
        ("KVM_SET_LAPIC", 0x4400AE8F),
        ("KVM_GET_VCPU_EVENTS", 0x8040AE9F),
        ("KVM_SET_VCPU_EVENTS", 0x4040AEA0),
        ("KVM_SET_CPUID2", 0x4008AE90),
        ("KVM_GET_TSC_KHZ", 0xAEA3),
        ("KVM_SIGNAL_MSI", 0x4020AEA5),
    ],
)
def test_ioctl_number_follows_the_ioc_rule(name: str, number: int) -> None:
    assert getattr(nr, name) == number
    assert nr.NAMES[number] == name
