"""`InPlaceVm`: one VM whose guest is rebooted in place, as QEMU's system reset does it.

QEMU does not destroy a VM to reboot it: `qemu_system_reset` resets the devices and the CPU, then
`kvm_arch_put_registers(cpu, KVM_PUT_RESET_STATE)` pushes the reset state to the same vCPU
(target/i386/kvm/kvm.c): registers (KVM_SET_REGS), segments, control registers and the APIC base
(KVM_SET_SREGS), the local APIC's register page (KVM_SET_LAPIC, the reset image of
hw/intc/apic_common.c `apic_reset_common`), and the TSC-deadline MSR, written after the APIC
(`kvm_put_tscdeadline_msr`). ROMs are copied in again (`rom_reset`). `reset` does the same with
structures built once, so a reboot allocates nothing and releases nothing: the fds, the mappings
and the VM stay for the whole storm.

Order matters: the APIC base goes back to xAPIC mode (KVM_SET_SREGS) before KVM_SET_LAPIC, since
KVM reads the page's ID register according to the mode (`kvm_apic_state_fixup`, x2APIC API).

    with InPlaceVm(rom) as vm:
        for _ in range(n):
            cycle = vm.run_cycle()
            vm.reset()
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import signal
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_TSC_DEADLINE
from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm import structs as s
from apiclab.backends.kvm.deadline import KICK_SIGNAL, ensure_kick_handler
from apiclab.backends.kvm.ioctls import KvmError, ioctl
from apiclab.backends.kvm.machine import KvmPc, reset_registers
from apiclab.backends.kvm.system import Kvm
from apiclab.hypervisor.machine import reset_image

PORT_LOG = 0xE9
EXIT_PORTS = frozenset({0x501, 0x8900})
_EXIT_REASON = struct.Struct("<I")  # kvm_run.exit_reason, at offset 8
_IO = struct.Struct("<BBHIQ")  # kvm_run.io: direction, size, port, count, data_offset
AGENT_RAM = 0x8000  # the agent's data, program copy, IDT and stack (agent.S) all lie below 32 KiB


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one boot-to-reboot cycle produced: the agent's log, how it stopped, the exits taken,
    and the LAPIC page read back with KVM_GET_LAPIC before the reset."""

    output: bytes
    stop: str  # "exit" when the agent wrote its exit port
    exits: int
    lapic: bytes


class _Watchdog:
    """One thread for the whole storm that stops a cycle running longer than `seconds`
    (immediate_exit + a signal, as `apiclab.backends.kvm.deadline`), instead of a timer per
    cycle: a reboot then costs no thread."""

    def __init__(self, kvm_run: s.KvmRun, seconds: float) -> None:
        ensure_kick_handler()
        self._run = kvm_run
        self.seconds = seconds
        self._thread_id = threading.get_ident()
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._stop = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._loop, name="kvm-storm-watchdog", daemon=True)
        self._thread.start()

    def arm(self) -> None:
        self._started_at = time.monotonic()

    def disarm(self) -> bool:
        """Stop watching; True if the watchdog stopped this cycle (immediate_exit is cleared)."""
        with self._lock:
            self._started_at = None
            fired, self.fired = self.fired, False
            if fired:
                self._run.hdr.immediate_exit = 0
        return fired

    def _loop(self) -> None:
        while not self._stop.wait(min(self.seconds / 4, 0.25)):
            with self._lock:
                started = self._started_at
                if started is None or time.monotonic() - started < self.seconds:
                    continue
                self.fired = True
                self._started_at = None
                self._run.hdr.immediate_exit = 1
                signal.pthread_kill(self._thread_id, KICK_SIGNAL)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class InPlaceVm:
    """A `KvmPc` (one VM, RAM, ROM, irqchip, PIT, one vCPU) kept across reboots."""

    def __init__(self, rom: bytes, kvm: Kvm, *, cycle_timeout_s: float = 5.0) -> None:
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
            self._run = vcpu.kvm_run
            self._watchdog = _Watchdog(self._run, cycle_timeout_s)
        except BaseException:
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
        ioctl(fd, nr.KVM_SET_REGS, self._regs)
        ioctl(fd, nr.KVM_SET_SREGS, self._sregs)
        ioctl(fd, nr.KVM_SET_LAPIC, self._lapic_page)
        if ioctl(fd, nr.KVM_SET_MSRS, self._msrs) != 1:
            raise KvmError(errno.EINVAL, "KVM_SET_MSRS (IA32_TSC_DEADLINE)")

    def run_cycle(self) -> Cycle:
        """KVM_RUN until the agent's exit port (or an error, or the watchdog), then
        KVM_GET_LAPIC. The loop reads the kvm_run page in place (api.rst §5): the exit reason
        at offset 8, the io exit (direction, size, port, count, data_offset) at 32.

        A cycle takes ~70 exits, so the loop is written for its cost per exit: `fcntl.ioctl`
        (a plain C call that releases the GIL) rather than ctypes, and one `struct` read of the
        page rather than ctypes field views."""
        fd, page = self._fd, self._map
        if page is None:
            raise ValueError("VM is closed")
        kvm_run, reason_at, io_at = nr.KVM_RUN, _EXIT_REASON.unpack_from, _IO.unpack_from
        out = bytearray()
        exits = 0
        stop = ""
        self._watchdog.arm()
        try:
            while True:
                try:
                    fcntl.ioctl(fd, kvm_run, 0)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        stop = "hang (watchdog)"
                        break
                    raise KvmError(e.errno or errno.EIO, "KVM_RUN") from None
                exits += 1
                reason = reason_at(page, 8)[0]
                if reason == s.KVM_EXIT_IO:
                    direction, size, port, count, start = io_at(page, s.KVM_RUN_UNION_OFFSET)
                    if direction == s.KVM_EXIT_IO_OUT:
                        if port == PORT_LOG:
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
            if self._watchdog.disarm() and not stop.startswith("hang"):
                stop = "hang (watchdog)"
        ioctl(fd, nr.KVM_GET_LAPIC, self._readback)
        return Cycle(bytes(out), stop, exits, bytes(self._readback))

    def read_lapic(self) -> bytes:
        """KVM_GET_LAPIC into a buffer kept for the storm: the raw register page."""
        ioctl(self._fd, nr.KVM_GET_LAPIC, self._readback)
        return bytes(self._readback)

    def close(self) -> None:
        self._watchdog.close()
        # drop every view of the kvm_run page first: an exported mmap cannot be unmapped
        del self._run, self._map, self._watchdog
        self.machine.close()

    def __enter__(self) -> InPlaceVm:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
