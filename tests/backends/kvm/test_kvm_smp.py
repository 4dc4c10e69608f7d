"""Programs for several CPUs on the real KVM: one vCPU per CPU, each running its own steps in the
program's order, its records tagged with its CPU."""

from __future__ import annotations

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.kvm.backend import KvmBackend
from apiclab.engine import events as evt
from apiclab.guest.program import Mode, Pause, Program, Read, Write

pytestmark = pytest.mark.usefixtures("kvm")  # skips, with the reason, where /dev/kvm is unusable


def events(program: Program) -> list[dict[str, object]]:
    result = KvmBackend().run(program, timeout_s=5.0)
    assert not result.timed_out, result.evidence
    return [{k: v for k, v in evt.to_dict(e).items() if k != "time"} for e in result.trace]


@pytest.mark.parametrize("mode", [Mode.X2APIC_REAL, Mode.XAPIC_PM32])
def test_each_cpu_reads_its_own_apic_id_in_the_order_written(mode: Mode) -> None:
    # x2APIC ID register: the ID itself; xAPIC: the ID in bits 31:24 (SDM §10.4.6, §10.12.5.1)
    steps = tuple(Read(Reg.ID, cpu=k) for k in (2, 0, 1, 2))
    got = events(Program(steps, mode=mode, cpus=3))
    reads = [(e["cpu"], e["value"]) for e in got if e["kind"] == "read"]
    shift = 0 if mode == Mode.X2APIC_REAL else 24
    assert reads == [(k, k << shift) for k in (2, 0, 1, 2)]
    assert got[-1] == {"kind": "end"}  # the run's end, no CPU's (as on the model)


def test_a_fixed_ipi_reaches_only_the_named_cpu() -> None:
    # physical destination 1 (SDM §10.6.2.1), IF = 0 on both: it waits in CPU 1's IRR
    steps = (
        Write(Reg.SVR, 0x1FF, cpu=0),
        Write(Reg.SVR, 0x1FF, cpu=1),
        Write(Reg.ICR_LOW, (1 << 56) | 0x4051, cpu=0),
        Pause(200_000),
        Read(Reg.IRR0 + 0x20, cpu=0),
        Read(Reg.IRR0 + 0x20, cpu=1),
    )
    got = events(Program(steps, mode=Mode.XAPIC_PM32, cpus=2))
    assert [(e["cpu"], e["value"]) for e in got if e["kind"] == "read"] == [(0, 0), (1, 1 << 17)]


def test_two_vcpus_sharing_an_xapic_id_both_take_an_ipi_to_it() -> None:
    # KVM takes the xAPIC ID write (SDM §10.4.6: model specific) and, as §10.6.2.1 asks, every
    # APIC whose ID matches accepts: the model's choice (kvm-unit-tests x86/apic.c
    # test_aliased_xapic_physical_ipi); an IPI to the ID given up reaches nobody
    steps = (
        Write(Reg.SVR, 0x1FF, cpu=0),
        Write(Reg.SVR, 0x1FF, cpu=1),
        Write(Reg.ID, 0, cpu=1),
        Read(Reg.ID, cpu=1),
        Write(Reg.ICR_LOW, 0x4045, cpu=0),
        Pause(200_000),
        Write(Reg.ICR_LOW, (1 << 56) | 0x4046, cpu=0),
        Pause(200_000),
        Read(Reg.IRR0 + 0x20, cpu=0),
        Read(Reg.IRR0 + 0x20, cpu=1),
    )
    got = events(Program(steps, mode=Mode.XAPIC_PM32, cpus=2))
    assert [(e["cpu"], e["value"]) for e in got if e["kind"] == "read"] == [
        (1, 0), (0, 1 << 5), (1, 1 << 5)]
