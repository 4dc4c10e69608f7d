"""`ReusedPc`: one one-vCPU `KvmPc` that runs many programs, put back in the state of a new one
before each, so that a suite pays for one VM instead of one per case.

A new VM costs tens of milliseconds here (KVM_CREATE_VM, the memory slots, the irqchip and the
PIT, the vCPU; closing it as much again), a program a few. Between two programs the PC is put
back as KVM made it, from a snapshot taken when it was new:

  memory    RAM dropped (MADV_DONTNEED: it reads zero again, as fresh anonymous memory), the new
            program's ROM copied in
  vCPU      KVM_SET_SREGS (segments, control registers, the APIC base: back to xAPIC mode before
            the APIC page, as `inplace.InPlaceVm` explains), KVM_SET_REGS, KVM_SET_LAPIC with the
            page the new vCPU had (KVM's own reset state: `kvm_lapic_reset`, LINT0 ExtINT and
            all), IA32_TSC_DEADLINE 0, KVM_SET_VCPU_EVENTS (nothing pending or injected, NMIs
            unmasked, no interrupt shadow), KVM_SET_MP_STATE runnable

  devices   after a program that drove them: the pc-testdev lines it raised lowered again
            (KVM_IRQ_LINE 0), then KVM_SET_IRQCHIP with the new PC's two 8259s and IOAPIC
            (redirection table, remote IRR, IRR, ID, select register)

What the snapshot does not cover is never changed by the programs that leave the PC for reuse:
a program that drives the 8254 PIT (ports 0x40-0x43, 0x61: its timer and the reinjection count
of KVM_REINJECT_CONTROL live outside any state KVM lets user space put back cheaply), or that did
not end at the agent's exit port (time-out, error, triple fault), is the PC's last: the next
program gets a new one. The CPUID is the same for every one-vCPU program (vCPU 0's). The guest
TSC is not put back (a run's times are relative to its first record).
`tests/backends/kvm/test_kvm_reuse.py` runs the conformance cases both ways and compares what
the guest saw.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from types import TracebackType

from apiclab.arch.registers import IA32_TSC_DEADLINE
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.ioctls import KvmError, ioctl
from apiclab.backends.kvm.machine import KvmPc
from apiclab.backends.kvm.system import Kvm
from apiclab.guest.program import In, MmioRead, MmioWrite, Out, Program, testdev_line

PIT_PORTS = frozenset({0x40, 0x41, 0x42, 0x43, 0x61})  # the 8254 and port B (its gate, speaker)


def leaves_pc_reusable(program: Program) -> bool:
    """Whether the reset puts back all that `program` may change (module docstring)."""
    return program.cpus == 1 and not any(
        isinstance(step, Out | In) and step.port in PIT_PORTS for step in program.steps)


def drives_devices(program: Program) -> bool:
    """Whether `program` may change a device outside the vCPU (port I/O, MMIO)."""
    return any(isinstance(step, Out | In | MmioWrite | MmioRead) for step in program.steps)


def testdev_lines(program: Program) -> set[int]:
    """The interrupt lines `program` drives through pc-testdev."""
    return {line for step in program.steps if isinstance(step, Out)
            and (line := testdev_line(step.port)) is not None}


class ReusedPc:
    """One-vCPU PCs on `kvm`, one kept from program to program while programs allow it."""

    def __init__(self, kvm: Kvm) -> None:
        self.kvm = kvm
        self._pc: KvmPc | None = None
        self._reusable = False
        self._devices_driven = False  # by the last program: the reset puts them back
        self._lines: set[int] = set()  # pc-testdev lines the last program drove
        self.made = 0  # PCs made: one for the first program and one after each that ends one

    def machine(self, rom: bytes) -> KvmPc:
        """A PC with `rom` in the state of a new one; `finished` must follow its run."""
        pc = self._pc
        if pc is not None and self._reusable:
            self._reusable = False  # until `finished` says the run left it reusable
            try:
                self._reset(pc, rom)
            except BaseException:
                self.close()
                raise
            return pc
        self.close()
        pc = self._pc = KvmPc(rom, self.kvm, 1)
        self.made += 1
        try:
            self._snapshot(pc)
        except BaseException:
            self.close()
            raise
        return pc

    def finished(self, program: Program, *, clean: bool) -> None:
        """The run of `program` is over; `clean`: it ended at the agent's exit port."""
        self._reusable = clean and leaves_pc_reusable(program)
        self._devices_driven = drives_devices(program)
        self._lines = testdev_lines(program)

    def _snapshot(self, pc: KvmPc) -> None:
        vcpu = pc.vcpu
        self._sregs = vcpu.get_sregs()
        self._regs = vcpu.get_regs()
        self._lapic = s.KvmLapicState()
        ioctl(vcpu.fd, nr.KVM_GET_LAPIC, self._lapic)
        self._events = s.KvmVcpuEvents()
        ioctl(vcpu.fd, nr.KVM_GET_VCPU_EVENTS, self._events)
        self._events.flags |= s.KVM_VCPUEVENT_VALID_NMI_PENDING | s.KVM_VCPUEVENT_VALID_SIPI_VECTOR
        self._msrs = s.msrs([(IA32_TSC_DEADLINE, 0)])
        self._runnable = ctypes.c_uint32(nr.KVM_MP_STATE_RUNNABLE)
        self._chips = []
        for chip_id in (s.KVM_IRQCHIP_PIC_MASTER, s.KVM_IRQCHIP_PIC_SLAVE, s.KVM_IRQCHIP_IOAPIC):
            chip = s.KvmIrqchip(chip_id=chip_id)
            ioctl(pc.vm.fd, nr.KVM_GET_IRQCHIP, chip)
            self._chips.append(chip)

    def _reset(self, pc: KvmPc, rom: bytes) -> None:
        if self._devices_driven:
            for line in self._lines:
                pc.vm.irq_line(line, 0)
            for chip in self._chips:
                ioctl(pc.vm.fd, nr.KVM_SET_IRQCHIP, chip)
        pc.ram.buffer.madvise(mmap.MADV_DONTNEED)
        pc.rom.write(0, rom)
        fd = pc.vcpu.fd
        ioctl(fd, nr.KVM_SET_SREGS, self._sregs)
        ioctl(fd, nr.KVM_SET_REGS, self._regs)
        ioctl(fd, nr.KVM_SET_LAPIC, self._lapic)
        if ioctl(fd, nr.KVM_SET_MSRS, self._msrs) != 1:
            raise KvmError(errno.EINVAL, "KVM_SET_MSRS (IA32_TSC_DEADLINE)")
        ioctl(fd, nr.KVM_SET_VCPU_EVENTS, self._events)
        ioctl(fd, nr.KVM_SET_MP_STATE, self._runnable)

    def close(self) -> None:
        if self._pc is not None:
            pc, self._pc = self._pc, None
            self._reusable = False
            pc.close()

    def __enter__(self) -> ReusedPc:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
