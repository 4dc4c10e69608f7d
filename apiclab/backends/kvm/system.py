"""`Kvm`: the /dev/kvm system file descriptor (api.rst §4 "API description", system ioctls).

    with Kvm() as kvm:
        kvm.get_api_version()          # 12
        with kvm.create_vm() as vm: ...
"""

from __future__ import annotations

import errno
import os
from types import TracebackType

from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.ioctls import KvmError, ioctl
from apiclab.backends.kvm.vm import Vm

DEV_KVM = "/dev/kvm"
KVM_API_VERSION = 12  # api.rst §4.1: "the only stable API version is 12"
KVM_MAX_CPUID_ENTRIES = 256


class Kvm:
    """The KVM subsystem. Opening it checks nothing; call `get_api_version` to know it is usable."""

    def __init__(self, path: str = DEV_KVM) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Kvm:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def get_api_version(self) -> int:
        """api.rst §4.1 KVM_GET_API_VERSION: 12 on every kernel since 2.6.22."""
        return ioctl(self.fd, nr.KVM_GET_API_VERSION)

    def check_extension(self, cap: int) -> int:
        """api.rst §4.4 KVM_CHECK_EXTENSION: 0 if `cap` (a KVM_CAP_*) is absent, else >= 1."""
        return ioctl(self.fd, nr.KVM_CHECK_EXTENSION, cap)

    def get_vcpu_mmap_size(self) -> int:
        """api.rst §4.5 KVM_GET_VCPU_MMAP_SIZE: bytes to mmap from a vCPU fd (kvm_run and more)."""
        return ioctl(self.fd, nr.KVM_GET_VCPU_MMAP_SIZE)

    def get_supported_cpuid(self) -> list[s.KvmCpuidEntry2]:
        """api.rst §4.46 KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can expose to a guest."""
        n = KVM_MAX_CPUID_ENTRIES
        while True:
            buf = s.cpuid2(n)
            try:
                ioctl(self.fd, nr.KVM_GET_SUPPORTED_CPUID, buf)
            except KvmError as e:  # E2BIG: the table has more entries than we made room for
                if e.errno == errno.E2BIG and n < 4096:
                    n *= 2
                    continue
                raise
            entries = buf.entries
            return [s.KvmCpuidEntry2.from_buffer_copy(entries[i]) for i in range(buf.nent)]

    def create_vm(self, machine_type: int = 0) -> Vm:
        """api.rst §4.2 KVM_CREATE_VM: a new VM (no memory, no vCPUs yet)."""
        mmap_size = self.get_vcpu_mmap_size()
        return Vm(ioctl(self.fd, nr.KVM_CREATE_VM, machine_type), mmap_size)
