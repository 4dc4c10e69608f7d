"""KVM ioctl numbers, computed in one place from the Linux `_IO/_IOR/_IOW/_IOWR` rule.

`include/uapi/asm-generic/ioctl.h`: number = dir << 30 | size << 16 | type << 8 | nr, with
dir 0 none, 1 write (user -> kernel), 2 read; KVM's type is KVMIO = 0xAE
(`include/uapi/linux/kvm.h`). Nothing else in the backend knows an ioctl number; `ioctl` is the
one call site of libc's ioctl(2) (through ctypes: `fcntl.ioctl` takes an int argument only as a C
int and copies small buffers, while KVM wants pointers to structures with trailing arrays), turning
a failure into `KvmError` with the errno and the ioctl's name.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from apiclab.backends.kvm import structs as s

KVMIO = 0xAE
_NONE, _WRITE, _READ = 0, 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return direction << 30 | size << 16 | KVMIO << 8 | nr


def _io(nr: int) -> int:
    return _ioc(_NONE, nr, 0)


def _ior(nr: int, struct: type[Any]) -> int:
    return _ioc(_READ, nr, ctypes.sizeof(struct))


def _iow(nr: int, struct: type[Any]) -> int:
    return _ioc(_WRITE, nr, ctypes.sizeof(struct))


def _iowr(nr: int, struct: type[Any]) -> int:
    return _ioc(_READ | _WRITE, nr, ctypes.sizeof(struct))


# system (/dev/kvm) ioctls -- api.rst §4.1, §4.3, §4.4, §4.5, §4.46
KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, s.KvmCpuid2)
# VM ioctls
KVM_CREATE_VCPU = _io(0x41)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, s.KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = _io(0x47)
KVM_CREATE_IRQCHIP = _io(0x60)
KVM_IRQ_LINE = _iow(0x61, s.KvmIrqLevel)
KVM_GET_IRQCHIP = _iowr(0x62, s.KvmIrqchip)
KVM_SET_IRQCHIP = _ior(0x63, s.KvmIrqchip)  # _IOR in the kernel's header, as it always was
KVM_REGISTER_COALESCED_MMIO = _iow(0x67, s.KvmCoalescedMmioZone)
KVM_SET_GSI_ROUTING = _iow(0x6A, s.KvmIrqRouting)
KVM_CREATE_PIT2 = _iow(0x77, s.KvmPitConfig)
KVM_SIGNAL_MSI = _iow(0xA5, s.KvmMsi)
# vCPU ioctls
KVM_RUN = _io(0x80)
KVM_GET_REGS = _ior(0x81, s.KvmRegs)
KVM_SET_REGS = _iow(0x82, s.KvmRegs)
KVM_GET_SREGS = _ior(0x83, s.KvmSregs)
KVM_SET_SREGS = _iow(0x84, s.KvmSregs)
KVM_GET_MSRS = _iowr(0x88, s.KvmMsrs)
KVM_SET_MSRS = _iow(0x89, s.KvmMsrs)
KVM_GET_LAPIC = _ior(0x8E, s.KvmLapicState)
KVM_SET_LAPIC = _iow(0x8F, s.KvmLapicState)
KVM_SET_CPUID2 = _iow(0x90, s.KvmCpuid2)
KVM_GET_TSC_KHZ = _io(0xA3)
KVM_GET_VCPU_EVENTS = _ior(0x9F, s.KvmVcpuEvents)
KVM_SET_VCPU_EVENTS = _iow(0xA0, s.KvmVcpuEvents)
KVM_SET_MP_STATE = _iow(0x99, ctypes.c_uint32)  # struct kvm_mp_state { __u32 mp_state; }

NAMES = {v: k for k, v in globals().items() if k.startswith("KVM_") and isinstance(v, int)}

# KVM_CHECK_EXTENSION arguments (include/uapi/linux/kvm.h)
KVM_CAP_IRQCHIP = 0
KVM_CAP_HLT = 1
KVM_CAP_USER_MEMORY = 3
KVM_CAP_SET_TSS_ADDR = 4
KVM_CAP_COALESCED_MMIO = 15  # its value: the ring's page offset in the vCPU mapping
KVM_CAP_EXT_CPUID = 7
KVM_CAP_NR_VCPUS = 9
KVM_CAP_NR_MEMSLOTS = 10
KVM_CAP_IRQ_ROUTING = 25
KVM_CAP_PIT2 = 33
KVM_CAP_TSC_CONTROL = 60
KVM_CAP_GET_TSC_KHZ = 61
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_TSC_DEADLINE_TIMER = 72
KVM_CAP_SYNC_REGS = 74
KVM_CAP_SIGNAL_MSI = 77
KVM_CAP_SPLIT_IRQCHIP = 121
KVM_CAP_X2APIC_API = 129
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_X86_DISABLE_EXITS = 143
KVM_CAP_COALESCED_PIO = 162
KVM_CAP_MP_STATE = 14

KVM_MP_STATE_RUNNABLE = 0  # api.rst §4.38: the vCPU runs (not waiting for INIT/SIPI)


class KvmError(OSError):
    """A KVM ioctl failed; `errno` is the kernel's answer and `ioctl` names the call."""

    def __init__(self, err: int, ioctl_name: str) -> None:
        super().__init__(err, f"{ioctl_name}: {os.strerror(err)} ({errno.errorcode.get(err, err)})")
        self.ioctl = ioctl_name


def ioctl(fd: int, request: int, arg: Any = 0) -> int:
    """`ioctl(2)` on a KVM fd: an int, or a ctypes object passed by address (the kernel reads and
    writes it in place, whatever its length: kvm_cpuid2 and kvm_msrs carry trailing arrays).

    EINTR is returned as a `KvmError` too (KVM_RUN stopped by a signal: api.rst §4.10).
    """
    try:
        pointer = ctypes.c_void_p(arg if isinstance(arg, int) else ctypes.addressof(arg))
    except TypeError:
        raise TypeError(f"ioctl argument must be an int or a ctypes object, not {arg!r}") from None
    result: int = _libc_ioctl(fd, request, pointer)  # ctypes drops the GIL during the call
    if result < 0:
        raise KvmError(ctypes.get_errno() or errno.EIO, NAMES.get(request, hex(request)))
    return result


_libc = ctypes.CDLL(None, use_errno=True)
_libc_ioctl = _libc.ioctl
_libc_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc_ioctl.restype = ctypes.c_int

# ioctl(2) for a loop of KVM_RUNs that keeps the GIL (InPlaceVm's exit loop): ctypes.PyDLL does
# not release it around the call. Measured on this project's machines, releasing and re-taking it
# around each KVM_RUN costs ~3 us an exit, as much as the exit's own kernel time, and a reboot in
# place takes ~70 exits. Called as ioctl_keeping_gil(fd, request, int_arg): all C ints (KVM_RUN's
# number fits), so no argtypes conversion; returns -1 with the errno in ctypes.get_errno().
ioctl_keeping_gil = ctypes.PyDLL(None, use_errno=True).ioctl
