"""`Vm` and `GuestMemory`: a VM file descriptor and the host memory backing guest RAM.

    with kvm.create_vm() as vm, GuestMemory(0x100000) as ram:
        vm.set_user_memory_region(0, 0x0, ram)
        vm.create_irqchip()
        with vm.create_vcpu(0) as vcpu: ...
"""

from __future__ import annotations

import ctypes
import mmap
import os
from types import TracebackType

from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.ioctls import ioctl
from apiclab.backends.kvm.vcpu import Vcpu


class GuestMemory:
    """Anonymous, page-aligned host memory for a memory slot; unmapped on close."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % mmap.PAGESIZE:
            raise ValueError(f"guest memory size {size:#x} is not a positive multiple of a page")
        self.size = size
        self._map: mmap.mmap | None = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                                mmap.PROT_READ | mmap.PROT_WRITE)
        # the temporary ctypes view is dropped at once, so the mapping can still be closed
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))

    @property
    def buffer(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError("guest memory is closed")
        return self._map

    def write(self, offset: int, data: bytes) -> None:
        self.buffer[offset:offset + len(data)] = data

    def read(self, offset: int, length: int) -> bytes:
        return self.buffer[offset:offset + length]

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Vm:
    """A VM file descriptor (api.rst §4, "vm ioctl")."""

    def __init__(self, fd: int, vcpu_mmap_size: int) -> None:
        self.fd = fd
        self.vcpu_mmap_size = vcpu_mmap_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def check_extension(self, cap: int) -> int:
        """api.rst §4.4 KVM_CHECK_EXTENSION on the VM fd (answers for this VM's type)."""
        return ioctl(self.fd, nr.KVM_CHECK_EXTENSION, cap)

    def set_user_memory_region(self, slot: int, guest_phys_addr: int, memory: GuestMemory,
                               flags: int = 0) -> None:
        """api.rst §4.35 KVM_SET_USER_MEMORY_REGION: back [gpa, gpa + size) with `memory`."""
        region = s.KvmUserspaceMemoryRegion(slot=slot, flags=flags,
                                            guest_phys_addr=guest_phys_addr,
                                            memory_size=memory.size,
                                            userspace_addr=memory.address)
        ioctl(self.fd, nr.KVM_SET_USER_MEMORY_REGION, region)

    def set_tss_addr(self, address: int) -> None:
        """api.rst §4.48 KVM_SET_TSS_ADDR: three pages VMX needs for real mode without URG."""
        ioctl(self.fd, nr.KVM_SET_TSS_ADDR, address)

    def create_irqchip(self) -> None:
        """api.rst §4.24 KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and a local APIC per vCPU."""
        ioctl(self.fd, nr.KVM_CREATE_IRQCHIP)

    def create_pit2(self, flags: int = 0) -> None:
        """api.rst §4.61 KVM_CREATE_PIT2: the in-kernel 8254 on ports 0x40-0x43 (after
        KVM_CREATE_IRQCHIP). Channel 0 drives GSI 0 (arch/x86/kvm/i8254.c, pit_do_work).

            vm.create_irqchip(); vm.create_pit2()
        """
        ioctl(self.fd, nr.KVM_CREATE_PIT2, s.KvmPitConfig(flags=flags))

    def set_gsi_routing(self, routes: list[tuple[int, int, int]]) -> None:
        """api.rst §4.52 KVM_SET_GSI_ROUTING: replace the whole GSI table with irqchip routes,
        each (gsi, irqchip, pin); irqchip is KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC.

            vm.set_gsi_routing([(0, s.KVM_IRQCHIP_IOAPIC, 2)])
        """
        ioctl(self.fd, nr.KVM_SET_GSI_ROUTING, s.irq_routing(routes))

    def irq_line(self, irq: int, level: int) -> None:
        """api.rst §4.25 KVM_IRQ_LINE: set GSI `irq` (PIC 0-15, IOAPIC 0-23) to `level`."""
        ioctl(self.fd, nr.KVM_IRQ_LINE, s.KvmIrqLevel(irq=irq, level=level))

    def signal_msi(self, address: int, data: int) -> int:
        """api.rst §4.71 KVM_SIGNAL_MSI: an MSI write; >0 delivered, 0 blocked by the guest.

        For a fixed interrupt to APIC 0: address 0xFEE00000, data = vector (SDM §10.11).
        """
        msi = s.KvmMsi(address_lo=address & 0xFFFFFFFF, address_hi=address >> 32, data=data)
        return ioctl(self.fd, nr.KVM_SIGNAL_MSI, msi)

    def create_vcpu(self, vcpu_id: int = 0) -> Vcpu:
        """api.rst §4.7 KVM_CREATE_VCPU: a vCPU in the reset state, its kvm_run page mapped."""
        fd = ioctl(self.fd, nr.KVM_CREATE_VCPU, vcpu_id)
        try:
            return Vcpu(fd, self.vcpu_mmap_size)
        except BaseException:
            os.close(fd)
            raise
