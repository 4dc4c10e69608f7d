"""Resources and time-outs: no fd or mapping outlives its VM, and a guest that never stops is
stopped by the wall-clock time-out."""

from __future__ import annotations

import os
import time

import pytest

from apiclab.backends.kvm.deadline import RunDeadline
from apiclab.backends.kvm.exits import Interrupted
from apiclab.backends.kvm.ioctls import KvmError
from apiclab.backends.kvm.machine import KvmPc
from apiclab.backends.kvm.system import Kvm
from apiclab.backends.kvm.vm import GuestMemory
from apiclab.guest.agent.image import RESET_VECTOR_OFFSET, ROM_SIZE


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _maps() -> tuple[int, int]:
    """(mappings of a KVM file: kvm_run pages and the like, all mappings)."""
    with open("/proc/self/maps") as f:
        lines = f.readlines()
    return sum("kvm" in line for line in lines), len(lines)


# The allocator may map or unmap an arena of its own between two samples; a leak of one mapping a
# run shows as one per run (30 or 1,000 here), far above this.
ALLOCATOR_NOISE = 2


def _same_fds_and_mappings(before: tuple[int, tuple[int, int]]) -> None:
    fds, (kvm_maps, maps) = before
    kvm_now, maps_now = _maps()
    assert (_fds(), kvm_now) == (fds, kvm_maps)
    assert abs(maps_now - maps) <= ALLOCATOR_NOISE, (maps, maps_now)


def _rom(code: bytes) -> bytes:
    rom = bytearray(ROM_SIZE)
    rom[RESET_VECTOR_OFFSET:RESET_VECTOR_OFFSET + len(code)] = code
    return bytes(rom)


JMP_SELF = b"\xeb\xfe"  # jmp $ : the guest loops forever at the reset vector
CLI_HLT = b"\xfa\xf4\xeb\xfc"  # cli; hlt; jmp back: halted with IF = 0, nothing wakes it


def test_a_thousand_vm_lifecycles_leave_no_fd_or_mapping(kvm: Kvm) -> None:
    """1,000 VMs with memory and a vCPU (its kvm_run mmap); every tenth fails half-way on purpose
    (a refused memory slot), and the context managers must still release everything."""
    with kvm.create_vm() as vm, GuestMemory(0x1000) as mem, vm.create_vcpu(0):
        vm.set_user_memory_region(0, 0, mem)  # warm up: first-use allocations are not leaks
    before = _fds(), _maps()
    failures = 0
    for i in range(1000):
        try:
            with kvm.create_vm() as vm, GuestMemory(0x2000) as mem:
                vm.set_user_memory_region(0, 0x10000, mem)
                with vm.create_vcpu(0) as vcpu:
                    vcpu.kvm_run.hdr.immediate_exit = 0
                    if i % 10 == 0:
                        vm.set_user_memory_region(1, 0x10001, mem)  # EINVAL: unaligned
        except KvmError:
            failures += 1
    assert failures == 100
    _same_fds_and_mappings(before)


def test_whole_machines_with_irqchip_leave_no_fd_or_mapping(kvm: Kvm) -> None:
    def one_run() -> None:
        with KvmPc(_rom(JMP_SELF), kvm) as m, RunDeadline(m.vcpu, 0.005) as deadline:
            m.vcpu.run()
        assert deadline.fired

    one_run()  # warm up: the timer thread's stack is cached by libc and then reused
    before = _fds(), _maps()
    for _ in range(30):
        one_run()
    _same_fds_and_mappings(before)


@pytest.mark.parametrize("code", [JMP_SELF, CLI_HLT], ids=["spinning", "halted-with-if-0"])
def test_guest_that_never_exits_is_stopped_by_the_time_out(kvm: Kvm, code: bytes) -> None:
    with KvmPc(_rom(code), kvm) as m:
        start = time.monotonic()
        with RunDeadline(m.vcpu, 0.2) as deadline:
            exits = []
            while not isinstance(exit_ := m.vcpu.run(), Interrupted):
                exits.append(exit_)
                assert time.monotonic() - start < 5, f"not stopped; exits {exits[-3:]}"
        elapsed = time.monotonic() - start
        assert deadline.fired
        assert 0.15 < elapsed < 2.0
        assert m.vcpu.get_regs().rip in (0xFFF0, 0xFFF1, 0xFFF2)  # still in its loop
        assert m.vcpu.kvm_run.hdr.immediate_exit == 0  # disarmed: the vCPU may run again


def test_deadline_that_does_not_fire_leaves_the_run_alone(kvm: Kvm) -> None:
    with KvmPc(_rom(b"\xe6\xe9" + JMP_SELF), kvm) as m:  # out 0xE9, al; then spin
        with RunDeadline(m.vcpu, 5.0) as deadline:
            exit_ = m.vcpu.run()
        assert not deadline.fired
        assert type(exit_).__name__ == "IoOut" and exit_.port == 0xE9  # type: ignore[union-attr]
        assert m.vcpu.kvm_run.hdr.immediate_exit == 0


def test_io_in_exit_is_answered_with_fill_io_in(kvm: Kvm) -> None:
    # in al, 0x80 ; out 0xE9, al ; jmp $  -- the guest echoes what the host answered
    with KvmPc(_rom(b"\xe4\x80\xe6\xe9" + JMP_SELF), kvm) as m:
        first = m.vcpu.run()
        assert (type(first).__name__, first.port) == ("IoIn", 0x80)  # type: ignore[union-attr]
        m.vcpu.fill_io_in(b"\x5a")
        second = m.vcpu.run()
        assert (type(second).__name__, second.port, second.data) == (  # type: ignore[union-attr]
            "IoOut", 0xE9, b"\x5a")
