"""ctypes layouts of the KVM structures this backend passes, checked by size tests.

Sources: `include/uapi/linux/kvm.h` (generic) and `arch/x86/include/uapi/asm/kvm.h` (x86). Only
the fields apiclab reads or writes are named; unions are kept as byte arrays of their fixed size
and read through the small views below, so the sizes stay exactly the kernel's.
"""

from __future__ import annotations

import ctypes
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64

from apiclab.arch.lapic_state import LAPIC_STATE_SIZE


class KvmUserspaceMemoryRegion(ctypes.Structure):
    """api.rst §4.35 KVM_SET_USER_MEMORY_REGION."""

    _fields_ = [
        ("slot", c_uint32),
        ("flags", c_uint32),
        ("guest_phys_addr", c_uint64),
        ("memory_size", c_uint64),
        ("userspace_addr", c_uint64),
    ]


class KvmIrqLevel(ctypes.Structure):
    """api.rst §4.25 KVM_IRQ_LINE: irq (or status, a union) and level."""

    _fields_ = [("irq", c_uint32), ("level", c_uint32)]


class KvmMsi(ctypes.Structure):
    """api.rst §4.71 KVM_SIGNAL_MSI."""

    _fields_ = [
        ("address_lo", c_uint32),
        ("address_hi", c_uint32),
        ("data", c_uint32),
        ("flags", c_uint32),
        ("devid", c_uint32),
        ("pad", c_uint8 * 12),
    ]


class KvmRegs(ctypes.Structure):
    """api.rst §4.11 KVM_GET_REGS (x86): 18 64-bit registers."""

    _fields_ = [
        (name, c_uint64)
        for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10",
                     "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
    ]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("padding", c_uint8),
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("padding", c_uint16 * 3)]


class KvmSregs(ctypes.Structure):
    """api.rst §4.13 KVM_GET_SREGS (x86)."""

    _fields_ = [
        ("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment), ("fs", KvmSegment),
        ("gs", KvmSegment), ("ss", KvmSegment), ("tr", KvmSegment), ("ldt", KvmSegment),
        ("gdt", KvmDtable), ("idt", KvmDtable),
        ("cr0", c_uint64), ("cr2", c_uint64), ("cr3", c_uint64), ("cr4", c_uint64),
        ("cr8", c_uint64), ("efer", c_uint64), ("apic_base", c_uint64),
        ("interrupt_bitmap", c_uint64 * 4),  # (KVM_NR_INTERRUPTS + 63) / 64
    ]


class KvmCpuidEntry2(ctypes.Structure):
    """api.rst §4.46 KVM_GET_SUPPORTED_CPUID entry."""

    _fields_ = [
        ("function", c_uint32),
        ("index", c_uint32),
        ("flags", c_uint32),
        ("eax", c_uint32),
        ("ebx", c_uint32),
        ("ecx", c_uint32),
        ("edx", c_uint32),
        ("padding", c_uint32 * 3),
    ]


class KvmCpuid2(ctypes.Structure):
    """Header of `struct kvm_cpuid2`; `entries[nent]` follow (see `cpuid2`)."""

    _fields_ = [("nent", c_uint32), ("padding", c_uint32)]


class KvmMsrEntry(ctypes.Structure):
    _fields_ = [("index", c_uint32), ("reserved", c_uint32), ("data", c_uint64)]


class KvmMsrs(ctypes.Structure):
    """Header of `struct kvm_msrs`; `entries[nmsrs]` follow (see `msrs`)."""

    _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32)]


class KvmVcpuEvents(ctypes.Structure):
    """api.rst §4.31 KVM_GET/SET_VCPU_EVENTS: pending or injected exception, interrupt and NMI,
    the interrupt shadow, the SIPI vector, SMM and a latched INIT (64 bytes), kept as raw bytes
    but for `flags`, which says which parts KVM_SET_VCPU_EVENTS applies."""

    _fields_ = [("head", ctypes.c_uint8 * 20), ("flags", c_uint32), ("tail", ctypes.c_uint8 * 40)]


# KVM_SET_VCPU_EVENTS applies nmi.pending and sipi_vector only with these flags
KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1
KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2


class KvmIrqchip(ctypes.Structure):
    """api.rst §4.26-4.27 KVM_GET/SET_IRQCHIP: one in-kernel interrupt controller's state (the
    8259 master or slave, or the IOAPIC, by `chip_id`), its 512-byte union kept as raw bytes."""

    _fields_ = [("chip_id", c_uint32), ("pad", c_uint32), ("chip", ctypes.c_uint8 * 512)]


class KvmCoalescedMmioZone(ctypes.Structure):
    """`struct kvm_coalesced_mmio_zone` (api.rst §4.116): a guest address range, or with `pio` = 1
    a port range, whose writes KVM queues in the vCPU mapping's ring page instead of exiting."""

    _fields_ = [("addr", c_uint64), ("size", c_uint32), ("pio", c_uint32)]


class KvmCoalescedMmio(ctypes.Structure):
    """`struct kvm_coalesced_mmio`: one queued write (its first `len` bytes of `data`)."""

    _fields_ = [("phys_addr", c_uint64), ("len", c_uint32), ("pio", c_uint32),
                ("data", c_uint8 * 8)]


class KvmCoalescedMmioRing(ctypes.Structure):
    """`struct kvm_coalesced_mmio_ring`: KVM appends at `last`, user space takes from `first`;
    the entries fill the rest of the page (KVM_COALESCED_MMIO_MAX of them)."""

    _fields_ = [("first", c_uint32), ("last", c_uint32)]


COALESCED_MMIO_MAX = (4096 - ctypes.sizeof(KvmCoalescedMmioRing)) // ctypes.sizeof(KvmCoalescedMmio)


class KvmPitConfig(ctypes.Structure):
    """api.rst §4.61 KVM_CREATE_PIT2: flags (KVM_PIT_SPEAKER_DUMMY) and 15 reserved words."""

    _fields_ = [("flags", c_uint32), ("pad", c_uint32 * 15)]


KVM_PIT_SPEAKER_DUMMY = 1


class KvmIrqRoutingEntry(ctypes.Structure):
    """api.rst §4.52 KVM_SET_GSI_ROUTING entry; the 32-byte union read as (irqchip, pin) for
    KVM_IRQ_ROUTING_IRQCHIP entries."""

    _fields_ = [
        ("gsi", c_uint32),
        ("type", c_uint32),
        ("flags", c_uint32),
        ("pad", c_uint32),
        ("irqchip", c_uint32),
        ("pin", c_uint32),
        ("u_rest", c_uint32 * 6),
    ]


class KvmIrqRouting(ctypes.Structure):
    """Header of `struct kvm_irq_routing`; `entries[nr]` follow (see `irq_routing`)."""

    _fields_ = [("nr", c_uint32), ("flags", c_uint32)]


KVM_IRQ_ROUTING_IRQCHIP = 1
KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC = 0, 1, 2


def irq_routing(routes: list[tuple[int, int, int]]) -> ctypes.Structure:
    """A `kvm_irq_routing` of irqchip routes, each (gsi, irqchip, pin)."""

    class _Routing(ctypes.Structure):
        _fields_ = [("nr", c_uint32), ("flags", c_uint32),
                    ("entries", KvmIrqRoutingEntry * len(routes))]

    out = _Routing(nr=len(routes))
    for i, (gsi, chip, pin) in enumerate(routes):
        out.entries[i].gsi, out.entries[i].type = gsi, KVM_IRQ_ROUTING_IRQCHIP
        out.entries[i].irqchip, out.entries[i].pin = chip, pin
    return out


class KvmLapicState(ctypes.Structure):
    """api.rst §4.57 KVM_GET_LAPIC: the 1 KiB register page (apiclab.arch.lapic_state)."""

    _fields_ = [("regs", ctypes.c_char * LAPIC_STATE_SIZE)]


def cpuid2(nent: int) -> ctypes.Structure:
    """A `kvm_cpuid2` with room for `nent` entries."""

    class _Cpuid2(ctypes.Structure):
        _fields_ = [("nent", c_uint32), ("padding", c_uint32), ("entries", KvmCpuidEntry2 * nent)]

    return _Cpuid2(nent=nent)


def msrs(entries: list[tuple[int, int]]) -> ctypes.Structure:
    """A `kvm_msrs` holding (index, data) pairs."""

    class _Msrs(ctypes.Structure):
        _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32),
                    ("entries", KvmMsrEntry * len(entries))]

    out = _Msrs(nmsrs=len(entries))
    for i, (index, data) in enumerate(entries):
        out.entries[i].index = index
        out.entries[i].data = data
    return out


# --- the kvm_run page (api.rst §5 "The kvm_run structure") ---------------------------------------

KVM_RUN_UNION_OFFSET = 32  # after the in/out header, before the 256-byte exit union


class KvmRunHeader(ctypes.Structure):
    _fields_ = [
        ("request_interrupt_window", c_uint8),
        ("immediate_exit", c_uint8),
        ("padding1", c_uint8 * 6),
        ("exit_reason", c_uint32),
        ("ready_for_interrupt_injection", c_uint8),
        ("if_flag", c_uint8),
        ("flags", c_uint16),
        ("cr8", c_uint64),
        ("apic_base", c_uint64),
    ]


class KvmRunIo(ctypes.Structure):
    """kvm_run.io (KVM_EXIT_IO)."""

    _fields_ = [
        ("direction", c_uint8),
        ("size", c_uint8),
        ("port", c_uint16),
        ("count", c_uint32),
        ("data_offset", c_uint64),
    ]


class KvmRunMmio(ctypes.Structure):
    """kvm_run.mmio (KVM_EXIT_MMIO)."""

    _fields_ = [("phys_addr", c_uint64), ("data", c_uint8 * 8), ("len", c_uint32),
                ("is_write", c_uint8)]


class KvmRunInternal(ctypes.Structure):
    """kvm_run.internal (KVM_EXIT_INTERNAL_ERROR)."""

    _fields_ = [("suberror", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class KvmRunSystemEvent(ctypes.Structure):
    _fields_ = [("type", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


KVM_SYNC_X86_REGS = 1  # kvm_run.kvm_dirty_regs: load kvm_run.s.regs.regs (KVM_CAP_SYNC_REGS)


class KvmRun(ctypes.Structure):
    """`struct kvm_run` as far as its fixed part goes (the exit union is 256 bytes)."""

    _fields_ = [
        ("hdr", KvmRunHeader),
        ("exit", c_uint8 * 256),
        ("kvm_valid_regs", c_uint64),
        ("kvm_dirty_regs", c_uint64),
        ("s", c_uint8 * 2048),
    ]


KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_HYPERCALL = 3
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_IRQ_WINDOW_OPEN = 7
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_IO_IN = 0
KVM_EXIT_IO_OUT = 1
