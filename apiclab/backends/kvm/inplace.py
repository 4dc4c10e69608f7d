"""`InPlaceVm`: one VM whose guest is rebooted in place, as QEMU's system reset does it.

QEMU does not destroy a VM to reboot it: `qemu_system_reset` resets the devices and the CPU, then
`kvm_arch_put_registers(cpu, KVM_PUT_RESET_STATE)` pushes the reset state to the same vCPU
(target/i386/kvm/kvm.c): registers (KVM_SET_REGS; here written into kvm_run's sync_regs, loaded by
the next KVM_RUN), segments, control registers and the APIC base
(KVM_SET_SREGS), the local APIC's register page (KVM_SET_LAPIC, the reset image of
hw/intc/apic_common.c `apic_reset_common`), and the TSC-deadline MSR, written after the APIC
(`kvm_put_tscdeadline_msr`). ROMs are copied in again (`rom_reset`). `reset` does the same with
structures built once, so a reboot allocates nothing and releases nothing: the fds, the mappings
and the VM stay for the whole storm.

Order matters: the APIC base goes back to xAPIC mode (KVM_SET_SREGS) before KVM_SET_LAPIC, since
KVM reads the page's ID register according to the mode (`kvm_apic_state_fixup`, x2APIC API).

The agent's log port is registered as coalesced PIO where the host allows it (api.rst
§4.116 KVM_REGISTER_COALESCED_MMIO with `pio` = 1, KVM_CAP_COALESCED_PIO; Linux 0804c849f1df
"kvm/x86 : add coalesced pio support" made it for ports whose writes need no answer, such as
the RTC's index port that Windows 7 writes often): KVM queues each write in the ring page of
the vCPU mapping instead of returning to user space, and the loop takes the bytes from the
ring at the next exit, in order. The guest runs the same instructions; it no longer stops ~70
times a cycle (each exit to Python and back costs ~11 us here, docs/kvm.md).

    with InPlaceVm(rom) as vm:
        for _ in range(n):
            cycle = vm.run_cycle()
            vm.reset()
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_TSC_DEADLINE
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.deadline import KICK_AGAIN_S, KICK_SIGNAL, ensure_kick_handler
from apiclab.backends.kvm.ioctls import KvmError, ioctl, ioctl_keeping_gil
from apiclab.backends.kvm.machine import KvmPc, reset_registers
from apiclab.backends.kvm.system import Kvm
from apiclab.backends.kvm.thread_timer import ThreadTimer
from apiclab.hypervisor.machine import reset_image

PORT_LOG = 0xE9
EXIT_PORTS = frozenset({0x501, 0x8900})
# kvm_run.exit_reason at offset 8 and, from offset 32, kvm_run.io: direction, size, port, count,
# data_offset (api.rst §5) -- one read of the page per exit, whatever the reason
_EXIT = struct.Struct("<I20xBBHIQ")
AGENT_RAM = 0x8000  # the agent's data, program copy, IDT and stack (agent.S) all lie below 32 KiB


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one boot-to-reboot cycle produced: the agent's log, how it stopped, the exits taken,
    and the LAPIC page read back with KVM_GET_LAPIC before the reset."""

    output: bytes
    stop: str  # "exit" when the agent wrote its exit port
    exits: int
    lapic: bytes


_Call = tuple[ctypes.c_ulong, ctypes.c_void_p, str]


def _call(request: int, arg: ctypes.Structure, name: str) -> _Call:
    """An ioctl's request and argument as C values, for `_ioctl`; `arg` must outlive them."""
    return ctypes.c_ulong(request), ctypes.c_void_p(ctypes.addressof(arg)), name


def _ioctl(fd: int, call: _Call) -> int:
    request, arg, name = call
    result: int = ioctl_keeping_gil(fd, request, arg)
    if result < 0:
        raise KvmError(ctypes.get_errno() or errno.EIO, name)
    return result


class InPlaceVm:
    """A `KvmPc` (one VM, RAM, ROM, irqchip, PIT, one vCPU) kept across reboots."""

    def __init__(self, rom: bytes, kvm: Kvm, *, cycle_timeout_s: float = 5.0,
                 coalesce_log: bool = True) -> None:
        ensure_kick_handler()
        self.machine = KvmPc(rom, kvm)
        try:
            self._rom = rom
            vcpu = self.machine.vcpu
            reset_registers(vcpu)
            # The reset state, taken once from the fresh vCPU (SDM vol. 3A §9.1.1 Table 9-1):
            self._sregs = vcpu.get_sregs()
            self._regs = s.KvmRegs()
            self._regs.rip, self._regs.rflags = 0xFFF0, 0x2
            self._lapic_page = s.KvmLapicState.from_buffer_copy(reset_image().encode())
            self._msrs = s.msrs([(IA32_TSC_DEADLINE, 0)])
            self._readback = s.KvmLapicState()
            self._fd = vcpu.fd
            self._map = vcpu._map  # the kvm_run page, read directly in the exit loop
            # KVM_CAP_SYNC_REGS (api.rst §6, kvm_run.s): the registers written into kvm_run and
            # flagged dirty are loaded by the next KVM_RUN, which saves KVM_SET_REGS's ioctl
            self._sync_regs: s.KvmRegs | None = None
            if kvm.check_extension(nr.KVM_CAP_SYNC_REGS) & s.KVM_SYNC_X86_REGS:
                page = ctypes.addressof(vcpu.kvm_run)
                self._sync_regs = s.KvmRegs.from_address(page + s.KvmRun.s.offset)
                self._dirty_regs = ctypes.c_uint64.from_address(
                    page + s.KvmRun.kvm_dirty_regs.offset)
            self.cycle_timeout_s = cycle_timeout_s
            self._ring: s.KvmCoalescedMmioRing | None = None
            self._ring_entries = 0  # offset of the ring's first entry in the vCPU mapping
            ring_page = kvm.check_extension(nr.KVM_CAP_COALESCED_MMIO)
            mapping = self._map
            if (coalesce_log and mapping is not None and ring_page > 0
                    and kvm.check_extension(nr.KVM_CAP_COALESCED_PIO)
                    and (ring_page + 1) * mmap.PAGESIZE <= len(mapping)):
                zone = s.KvmCoalescedMmioZone(addr=PORT_LOG, size=1, pio=1)
                ioctl(self.machine.vm.fd, nr.KVM_REGISTER_COALESCED_MMIO, zone)
                self._ring = s.KvmCoalescedMmioRing.from_buffer(mapping,
                                                                ring_page * mmap.PAGESIZE)
                self._ring_entries = ring_page * mmap.PAGESIZE + ctypes.sizeof(self._ring)
            # the reset's and the read-back's ioctls, their arguments made once (C types: no
            # conversion per call) and called keeping the GIL, as KVM_RUN (~6 us less each here)
            self._set_sregs = _call(nr.KVM_SET_SREGS, self._sregs, "KVM_SET_SREGS")
            self._set_lapic = _call(nr.KVM_SET_LAPIC, self._lapic_page, "KVM_SET_LAPIC")
            self._set_msrs = _call(nr.KVM_SET_MSRS, self._msrs, "KVM_SET_MSRS")
            self._get_lapic = _call(nr.KVM_GET_LAPIC, self._readback, "KVM_GET_LAPIC")
            # the cycle's time-out: a kernel timer signalling the thread in KVM_RUN (made again
            # if another thread runs the cycles)
            self._timer = ThreadTimer(KICK_SIGNAL)
        except BaseException:
            self._ring = None  # a view of the vCPU mapping would keep it from being unmapped
            self.machine.close()
            raise
        self.tsc_khz = vcpu.get_tsc_khz()

    def set_reset_image(self, image: LapicState) -> None:
        """The page KVM_SET_LAPIC pushes at every reset (default: QEMU's reset image)."""
        ctypes.memmove(ctypes.addressof(self._lapic_page), image.encode(), ctypes.sizeof(
            self._lapic_page))

    def reset(self) -> None:
        """QEMU's system reset of the vCPU and memory (module docstring), in place."""
        ram, rom = self.machine.ram, self.machine.rom
        ctypes.memset(ram.address, 0, AGENT_RAM)
        ctypes.memmove(rom.address, self._rom, len(self._rom))  # rom_reset
        fd = self._fd
        if self._sync_regs is not None:
            ctypes.memmove(ctypes.addressof(self._sync_regs), ctypes.addressof(self._regs),
                           ctypes.sizeof(self._regs))
            self._dirty_regs.value = s.KVM_SYNC_X86_REGS
        else:
            ioctl(fd, nr.KVM_SET_REGS, self._regs)
        _ioctl(fd, self._set_sregs)
        _ioctl(fd, self._set_lapic)
        if _ioctl(fd, self._set_msrs) != 1:
            raise KvmError(errno.EINVAL, "KVM_SET_MSRS (IA32_TSC_DEADLINE)")

    @property
    def coalesced_log(self) -> bool:
        """Whether the log port's writes are queued in the ring rather than exits."""
        return self._ring is not None

    def _drain(self, out: bytearray) -> None:
        """Append the ring's queued log writes to `out`, oldest first, and free their slots."""
        ring, page, base = self._ring, self._map, self._ring_entries
        if ring is None or page is None:
            return
        first, last = ring.first, ring.last
        size = ctypes.sizeof(s.KvmCoalescedMmio)  # phys_addr 8, len 4, pio 4, data 8
        while first != last:
            end = last if last > first else s.COALESCED_MMIO_MAX
            raw = page[base + first * size:base + end * size]
            if raw[8::size].count(1) == end - first:  # every write one byte: the usual case
                out += raw[16::size]
            else:
                for at in range(0, len(raw), size):
                    out += raw[at + 16:at + 16 + raw[at + 8]]
            first = end % s.COALESCED_MMIO_MAX
        ring.first = first

    def run_cycle(self) -> Cycle:
        """KVM_RUN until the agent's exit port (or an error, or the time-out), then
        KVM_GET_LAPIC. The loop reads the kvm_run page in place (api.rst §5): the exit reason
        at offset 8, the io exit (direction, size, port, count, data_offset) at 32.

        A cycle takes ~70 exits if the log port is not coalesced (1 if it is), so the loop is
        written for its cost per exit: KVM_RUN through
        `ioctl_keeping_gil` (the GIL is not released and re-taken around each exit; other
        Python threads of the process run only between exits meanwhile), one `struct` read of
        the page, and a kernel timer instead of a watchdog thread for the time-out
        (thread_timer.py)."""
        fd, page = self._fd, self._map
        if page is None:
            raise ValueError("VM is closed")
        timer = self._timer
        if timer.thread_id != threading.get_ident():  # the signal goes to the thread running
            timer.close()
            timer = self._timer = ThreadTimer(KICK_SIGNAL)
        run, get_errno, exit_at = ioctl_keeping_gil, ctypes.get_errno, _EXIT.unpack_from
        kvm_run, io_exit, out_dir, log_port = nr.KVM_RUN, s.KVM_EXIT_IO, s.KVM_EXIT_IO_OUT, PORT_LOG
        out = bytearray()
        exits = 0
        stop = ""
        timeout = self.cycle_timeout_s
        deadline = time.monotonic() + timeout
        ring = self._ring
        drain = self._drain
        timer.arm(timeout, every=KICK_AGAIN_S)
        try:
            while True:
                result = run(fd, kvm_run, 0)
                if ring is not None and ring.first != ring.last:
                    drain(out)  # queued log bytes come before whatever this exit is
                if result < 0:
                    err = get_errno()
                    if err != errno.EINTR:
                        raise KvmError(err or errno.EIO, "KVM_RUN")
                    if time.monotonic() >= deadline:
                        stop = "hang (watchdog)"
                        break
                    continue  # another signal: its Python handler runs, the guest goes on
                exits += 1
                reason, direction, size, port, count, start = exit_at(page, 8)
                if reason == io_exit:
                    if direction == out_dir:
                        if port == log_port:
                            out += page[start:start + size * count]
                        elif port in EXIT_PORTS:
                            stop = "exit"
                            break
                    else:  # an empty ISA bus reads all ones
                        page[start:start + size * count] = b"\xff" * (size * count)
                elif reason == s.KVM_EXIT_MMIO:
                    continue  # nothing decodes it (the APIC and IOAPIC are in the kernel)
                elif reason == s.KVM_EXIT_INTR:
                    stop = "hang (watchdog)"
                    break
                else:
                    stop = f"exit reason {reason}"
                    break
        finally:
            timer.disarm()
        _ioctl(fd, self._get_lapic)
        return Cycle(bytes(out), stop, exits, bytes(self._readback))

    def read_lapic(self) -> bytes:
        """KVM_GET_LAPIC into a buffer kept for the storm: the raw register page."""
        _ioctl(self._fd, self._get_lapic)
        return bytes(self._readback)

    def close(self) -> None:
        self._timer.close()
        # drop the views of the kvm_run page first: an exported mmap cannot be unmapped
        del self._map
        self._sync_regs = None
        self._ring = None
        self.machine.close()

    def __enter__(self) -> InPlaceVm:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
