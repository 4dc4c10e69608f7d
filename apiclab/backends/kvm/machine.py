"""The little PC the agent boots on: RAM below the ROM, the ROM at 0xF0000 and below 4 GiB,
an in-kernel irqchip and 8254 PIT (ISA IRQ0 on IOAPIC pin 2), one vCPU (or several) in the reset state with x2APIC and TSC-deadline in its CPUID.

    with KvmPc(rom) as m:
        m.vcpu.set_lapic(image)
        ...
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.system import Kvm
from apiclab.backends.kvm.vcpu import Vcpu
from apiclab.backends.kvm.vm import GuestMemory, Vm
from apiclab.guest.agent.image import ROM_ALIAS_4G, ROM_BASE, ROM_SIZE

RAM_SIZE = ROM_BASE  # conventional memory up to the ROM; the agent uses the first 32 KiB
CPUID_X2APIC = 1 << 21  # CPUID.01H:ECX.x2APIC (SDM §10.12.1)
CPUID_TSC_DEADLINE = 1 << 24  # CPUID.01H:ECX.TSC_DEADLINE (SDM §10.5.4.1)
RESET_TSS_ADDR = 0xFFFBD000  # the three pages QEMU gives VMX real mode, below the ROM alias


def pc_gsi_routes() -> list[tuple[int, int, int]]:
    """The GSI table QEMU installs for a PC with an in-kernel irqchip (hw/i386/kvm/ioapic.c,
    kvm_pc_setup_irq_routing): ISA IRQs 0-15 to the two 8259s (2 is the cascade), and to the
    IOAPIC pin of the same number except IRQ0, which goes to pin 2 (the MADT's interrupt source
    override; QEMU TCG's ioapic_set_irq and Bochs' set_irq_level do the same). KVM's own default
    (default_routing in arch/x86/kvm/irq_comm.c) sends GSI 0 to pin 0, which no PC firmware
    describes, so the in-kernel PIT would not reach the pin the other backends use."""
    routes = [(i, s.KVM_IRQCHIP_PIC_MASTER, i) for i in range(8) if i != 2]
    routes += [(i, s.KVM_IRQCHIP_PIC_SLAVE, i - 8) for i in range(8, 16)]
    routes += [(i, s.KVM_IRQCHIP_IOAPIC, 2 if i == 0 else i) for i in range(24) if i != 2]
    return routes


def guest_cpuid(kvm: Kvm, apic_id: int = 0) -> list[s.KvmCpuidEntry2]:
    """KVM's supported CPUID with x2APIC and TSC-deadline exposed in leaf 1, and the vCPU's
    initial APIC ID in CPUID.01H:EBX[31:24] and CPUID.0BH:EDX (SDM vol. 2A CPUID; KVM leaves
    these to user space, and the agent finds which CPU it is from leaf 1)."""
    entries = kvm.get_supported_cpuid()
    for entry in entries:
        if entry.function == 1:
            entry.ecx |= CPUID_X2APIC | CPUID_TSC_DEADLINE
            entry.ebx = (entry.ebx & 0x00FFFFFF) | apic_id << 24
        elif entry.function == 0xB:
            entry.edx = apic_id
    return entries


def reset_registers(vcpu: Vcpu) -> None:
    """The power-up state of SDM vol. 3A §9.1.1 Table 9-1: CS F000 based at FFFF0000, IP FFF0.

    KVM creates vCPUs in that state already; writing it makes each run start identically even if
    the vCPU was used before, and documents what the agent relies on.
    """
    sregs = vcpu.get_sregs()
    sregs.cs.selector, sregs.cs.base, sregs.cs.limit = 0xF000, 0xFFFF0000, 0xFFFF
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        seg.selector, seg.base, seg.limit = 0, 0, 0xFFFF
    sregs.cr0 = 0x60000010
    vcpu.set_sregs(sregs)
    regs = s.KvmRegs()
    regs.rip, regs.rflags = 0xFFF0, 0x2
    vcpu.set_regs(regs)


class KvmPc:
    """The real PC on /dev/kvm the agent boots on (the model of a VM is
    `apiclab.hypervisor.machine.ModelVm`). Owns every fd and mapping of one run; `close` releases all of them, in reverse order."""

    def __init__(self, rom: bytes, kvm: Kvm | None = None, cpus: int = 1) -> None:
        if len(rom) != ROM_SIZE:
            raise ValueError(f"ROM image must be {ROM_SIZE} bytes, got {len(rom)}")
        self._stack = ExitStack()
        try:
            self.kvm = kvm if kvm is not None else self._stack.enter_context(Kvm())
            self.ram = self._stack.enter_context(GuestMemory(RAM_SIZE))
            self.rom = self._stack.enter_context(GuestMemory(ROM_SIZE))
            self.rom.write(0, rom)
            self.vm: Vm = self._stack.enter_context(self.kvm.create_vm())
            self.vm.set_user_memory_region(0, 0, self.ram)
            self.vm.set_user_memory_region(1, ROM_BASE, self.rom)
            self.vm.set_user_memory_region(2, ROM_ALIAS_4G, self.rom)
            if self.kvm.check_extension(nr.KVM_CAP_SET_TSS_ADDR):
                self.vm.set_tss_addr(RESET_TSS_ADDR)
            self.vm.create_irqchip()
            if self.kvm.check_extension(nr.KVM_CAP_PIT2):
                # the 8254 every PC has (a level source for IOAPIC cases), wired as QEMU wires it
                self.vm.create_pit2()
                self.vm.set_gsi_routing(pc_gsi_routes())
            # vCPU k has APIC ID k (KVM's xAPIC ID is the vcpu_id); every one starts at the
            # reset vector, as the model's CPUs all run from the start (the agent orders them)
            self.vcpus: list[Vcpu] = []
            for k in range(cpus):
                vcpu = self._stack.enter_context(self.vm.create_vcpu(k))
                vcpu.set_cpuid2(guest_cpuid(self.kvm, k))
                reset_registers(vcpu)
                if k:
                    vcpu.set_runnable()
                self.vcpus.append(vcpu)
            self.vcpu: Vcpu = self.vcpus[0]
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> KvmPc:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
