"""`Vcpu`: a vCPU file descriptor, its mmap'd kvm_run page and its ioctls (api.rst §4, §5).

    with vm.create_vcpu(0) as vcpu:
        regs = vcpu.get_regs()
        match vcpu.run():
            case IoOut(port=0xE9, data=data): ...
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from types import TracebackType

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.exits import (
    FailEntry,
    Hlt,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Other,
    Shutdown,
    SystemEvent,
    VcpuExit,
)
from apiclab.backends.kvm.ioctls import KvmError, ioctl


class Vcpu:
    """One vCPU. Closing it unmaps kvm_run and closes the fd."""

    def __init__(self, fd: int, mmap_size: int) -> None:
        self.fd = fd
        self._map: mmap.mmap | None = mmap.mmap(fd, mmap_size, mmap.MAP_SHARED,
                                                mmap.PROT_READ | mmap.PROT_WRITE)
        self._run: s.KvmRun | None = s.KvmRun.from_buffer(self._map)

    @property
    def kvm_run(self) -> s.KvmRun:
        if self._run is None:
            raise ValueError("vCPU is closed")
        return self._run

    def close(self) -> None:
        self._run = None  # drop the ctypes view first: an exported mmap cannot be closed
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Vcpu:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- running ----------------------------------------------------------------------------

    def run(self) -> VcpuExit:
        """api.rst §4.10 KVM_RUN: enter the guest until it exits to user space."""
        try:
            ioctl(self.fd, nr.KVM_RUN)
        except KvmError as e:
            if e.errno == errno.EINTR:
                return Interrupted()
            raise
        return self._exit()

    def set_runnable(self) -> None:
        """api.rst §4.38 KVM_SET_MP_STATE RUNNABLE: with the in-kernel irqchip KVM creates every
        vCPU but the BSP waiting for INIT/SIPI; this one runs from its reset state instead."""
        ioctl(self.fd, nr.KVM_SET_MP_STATE, ctypes.c_uint32(nr.KVM_MP_STATE_RUNNABLE))

    def set_immediate_exit(self, value: bool) -> None:
        """kvm_run.immediate_exit (api.rst §5, KVM_CAP_IMMEDIATE_EXIT): KVM_RUN returns EINTR."""
        self.kvm_run.hdr.immediate_exit = int(value)

    def _exit(self) -> VcpuExit:
        run = self.kvm_run
        reason = run.hdr.exit_reason
        union = ctypes.addressof(run) + s.KVM_RUN_UNION_OFFSET
        match reason:
            case s.KVM_EXIT_IO:
                io = s.KvmRunIo.from_address(union)
                if io.direction == s.KVM_EXIT_IO_OUT:
                    start = io.data_offset
                    return IoOut(io.port, io.size, self._page(start, io.size * io.count))
                return IoIn(io.port, io.size, io.count)
            case s.KVM_EXIT_MMIO:
                mmio = s.KvmRunMmio.from_address(union)
                if mmio.is_write:
                    return MmioWrite(mmio.phys_addr, bytes(mmio.data[:mmio.len]))
                return MmioRead(mmio.phys_addr, mmio.len)
            case s.KVM_EXIT_HLT:
                return Hlt()
            case s.KVM_EXIT_SHUTDOWN:
                return Shutdown()
            case s.KVM_EXIT_INTR:
                return Interrupted()
            case s.KVM_EXIT_FAIL_ENTRY:
                return FailEntry(ctypes.c_uint64.from_address(union).value)
            case s.KVM_EXIT_INTERNAL_ERROR:
                internal = s.KvmRunInternal.from_address(union)
                return InternalError(internal.suberror,
                                     tuple(internal.data[:min(internal.ndata, 16)]))
            case s.KVM_EXIT_SYSTEM_EVENT:
                return SystemEvent(s.KvmRunSystemEvent.from_address(union).type)
            case _:
                return Other(reason)

    def _page(self, offset: int, length: int) -> bytes:
        if self._map is None:
            raise ValueError("vCPU is closed")
        return self._map[offset:offset + length]

    def fill_io_in(self, data: bytes) -> None:
        """Answer an `IoIn` exit: the bytes the guest's IN reads on the next KVM_RUN."""
        io = s.KvmRunIo.from_address(ctypes.addressof(self.kvm_run) + s.KVM_RUN_UNION_OFFSET)
        if self._map is None:
            raise ValueError("vCPU is closed")
        self._map[io.data_offset:io.data_offset + len(data)] = data

    def fill_mmio_read(self, data: bytes) -> None:
        """Answer an `MmioRead` exit: the bytes the guest's load reads on the next KVM_RUN."""
        mmio = s.KvmRunMmio.from_address(ctypes.addressof(self.kvm_run) + s.KVM_RUN_UNION_OFFSET)
        mmio.data[:len(data)] = list(data)

    # --- registers --------------------------------------------------------------------------

    def get_regs(self) -> s.KvmRegs:
        """api.rst §4.11 KVM_GET_REGS."""
        regs = s.KvmRegs()
        ioctl(self.fd, nr.KVM_GET_REGS, regs)
        return regs

    def set_regs(self, regs: s.KvmRegs) -> None:
        """api.rst §4.12 KVM_SET_REGS."""
        ioctl(self.fd, nr.KVM_SET_REGS, regs)

    def get_sregs(self) -> s.KvmSregs:
        """api.rst §4.13 KVM_GET_SREGS."""
        sregs = s.KvmSregs()
        ioctl(self.fd, nr.KVM_GET_SREGS, sregs)
        return sregs

    def set_sregs(self, sregs: s.KvmSregs) -> None:
        """api.rst §4.14 KVM_SET_SREGS."""
        ioctl(self.fd, nr.KVM_SET_SREGS, sregs)

    def set_cpuid2(self, entries: list[s.KvmCpuidEntry2]) -> None:
        """api.rst §4.73 KVM_SET_CPUID2: the CPUID the guest sees (before the first KVM_RUN)."""
        buf = s.cpuid2(len(entries))
        for i, entry in enumerate(entries):
            buf.entries[i] = entry
        ioctl(self.fd, nr.KVM_SET_CPUID2, buf)

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        """api.rst §4.18 KVM_GET_MSRS: returns {index: value} for the MSRs KVM could read."""
        buf = s.msrs([(i, 0) for i in indices])
        n = ioctl(self.fd, nr.KVM_GET_MSRS, buf)
        return {buf.entries[i].index: buf.entries[i].data for i in range(n)}

    def set_msrs(self, values: dict[int, int]) -> int:
        """api.rst §4.19 KVM_SET_MSRS: returns how many were set (stops at the first refused)."""
        return ioctl(self.fd, nr.KVM_SET_MSRS, s.msrs(list(values.items())))

    def get_lapic(self) -> LapicState:
        """api.rst §4.57 KVM_GET_LAPIC: the in-kernel local APIC's register page."""
        page = s.KvmLapicState()
        ioctl(self.fd, nr.KVM_GET_LAPIC, page)
        return LapicState.decode(ctypes.string_at(ctypes.addressof(page), ctypes.sizeof(page)))

    def set_lapic(self, state: LapicState) -> None:
        """api.rst §4.58 KVM_SET_LAPIC: replace the register page (the reboot/restore path)."""
        page = s.KvmLapicState.from_buffer_copy(state.encode())
        ioctl(self.fd, nr.KVM_SET_LAPIC, page)

    def get_tsc_khz(self) -> int:
        """api.rst §4.56 KVM_GET_TSC_KHZ: the guest's TSC frequency in kHz."""
        return ioctl(self.fd, nr.KVM_GET_TSC_KHZ)
