"""The agent ROM on the real KVM through KvmBackend: each step of the program format does what
the guest-visible events say, in both modes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.base import BackendUnavailable, RunResult
from apiclab.backends.emulator import allow_children, stop_children
from apiclab.backends.kvm.backend import KvmBackend, open_kvm
from apiclab.backends.kvm.deadline import ensure_kick_handler
from apiclab.backends.kvm.tracefs import TRACEFS, TraceUnavailable
from apiclab.engine import events as evt
from apiclab.guest.program import (
    BugcheckIfTimeout,
    Cli,
    End,
    Handler,
    Hlt,
    In,
    MmioRead,
    MmioWrite,
    Mode,
    Out,
    Pause,
    Program,
    Rdmsr,
    Read,
    Sti,
    StiHlt,
    TscDeadline,
    Wait,
    Write,
)
from apiclab.hypervisor.machine import reset_image

pytestmark = pytest.mark.usefixtures("kvm")  # skips, with the reason, where /dev/kvm is unusable
MODES = [Mode.X2APIC_REAL, Mode.XAPIC_PM32]
LVT_TSC_DEADLINE = 2 << 17
SELF = 1 << 18  # ICR destination shorthand 01: self (SDM §10.6.1)


@pytest.fixture(scope="module")
def backend() -> Iterator[KvmBackend]:
    yield KvmBackend()


def kinds(result_events: list[dict[str, object]]) -> list[object]:
    return [e["kind"] for e in result_events]


def run(backend: KvmBackend, program: Program, **kw: object) -> list[dict[str, object]]:
    result = backend.run(program, timeout_s=5.0, **kw)  # type: ignore[arg-type]
    assert not result.timed_out, result.evidence
    return [{k: v for k, v in evt.to_dict(e).items() if k != "time"} for e in result.trace]


@pytest.mark.parametrize("mode", MODES)
def test_read_reports_the_apic_version_register(backend: KvmBackend, mode: Mode) -> None:
    events = run(backend, Program((Read(Reg.VERSION), End()), mode=mode))
    assert events == [{"kind": "read", "reg": 0x30, "value": 0x50014}, {"kind": "end"}]


@pytest.mark.parametrize("mode", MODES)
def test_guest_reads_ppr_from_a_restored_in_service_vector(backend: KvmBackend,
                                                           mode: Mode) -> None:
    image = reset_image()
    image.isr = 1 << 0xE1
    events = run(backend, Program((Read(Reg.PPR), Read(Reg.ISR0 + 0x70)),
                                  mode=mode), lapic_image=image)
    assert events[:2] == [{"kind": "read", "reg": 0xA0, "value": 0xE0},
                          {"kind": "read", "reg": 0x170, "value": 1 << (0xE1 - 0xE0)}]


@pytest.mark.parametrize("mode", MODES)
def test_self_ipi_reaches_the_handler_and_the_wait_completes(backend: KvmBackend,
                                                             mode: Mode) -> None:
    send = (Write(Reg.SELF_IPI, 0x40) if mode == Mode.X2APIC_REAL
            else Write(Reg.ICR_LOW, SELF | 0x40))
    program = Program((Write(Reg.SVR, 0x1FF), Sti(), send,
                       Wait(0x40, 10**9), End()),
                      {0x40: Handler(eoi=True, log=True)}, mode=mode)
    events = run(backend, program)
    assert kinds(events) == ["interrupt", "wait", "end"]
    assert events[0]["vector"] == 0x40
    assert events[1] == {"kind": "wait", "vector": 0x40, "count": 1, "outcome": "done"}


@pytest.mark.parametrize("mode", MODES)
def test_tsc_deadline_timer_wakes_hlt(backend: KvmBackend, mode: Mode) -> None:
    # The deadline lies ~10 ms ahead (20 M ticks), so the guest is halted when it passes even on
    # a loaded host; with 1 M ticks a slow STI;HLT could come after the timer already fired, and
    # this host's KVM injects an interrupt pending at STI only at a later exit (docs/host.md).
    program = Program((Write(Reg.SVR, 0x1FF),
                       Write(Reg.LVT_TIMER, LVT_TSC_DEADLINE | 0xD1),
                       TscDeadline(20_000_000), Sti(), Hlt(),
                       Wait(0xD1, 1), End()),
                      {0xD1: Handler(eoi=True, log=False)}, mode=mode)
    events = run(backend, program)
    assert events == [{"kind": "wait", "vector": 0xD1, "count": 1, "outcome": "done"},
                      {"kind": "end"}]


def test_wait_without_interrupts_times_out_into_the_bugcheck(backend: KvmBackend) -> None:
    program = Program((Wait(0xD1, 2_000_000), Pause(1000),
                       BugcheckIfTimeout(0x5C, (0x10B, 3)), End()))
    assert run(backend, program) == [
        {"kind": "wait", "vector": 0xD1, "count": 0, "outcome": "timeout"},
        {"kind": "bugcheck", "code": 0x5C, "params": [0x10B, 3, 0, 0]},
        {"kind": "end"},
    ]


def test_halted_guest_is_reported_as_timed_out(backend: KvmBackend) -> None:
    result = backend.run(Program((Cli(), Hlt(), End())), timeout_s=0.2)
    assert result.timed_out
    assert [e.kind for e in result.trace] == ["timeout"]
    assert result.evidence["stop"] == "interrupted"


def test_an_interruption_ends_a_halted_guest_at_once_not_at_its_time_out(
        backend: KvmBackend) -> None:
    """SIGINT/SIGTERM end the run through emulator.stop_children: a KVM_RUN in progress is
    kicked out then (as a conform batch run can take the batch's whole time, ~2 minutes)."""
    ensure_kick_handler()  # from the main thread, as the command line does before its pool runs
    results: list[RunResult] = []
    worker = threading.Thread(
        target=lambda: results.append(backend.run(Program((Cli(), Hlt(), End())), timeout_s=60)))
    worker.start()
    try:
        time.sleep(0.3)  # the guest is halted, its time-out a minute away
        stop_children()
        worker.join(10)
        assert not worker.is_alive(), "the run did not end when interrupted"
    finally:
        allow_children()
    (result,) = results
    assert result.evidence["stop"] == "interrupted"
    assert not result.timed_out  # ended by the interruption, not by its time-out
    # the vCPU's immediate_exit is put back: the next run on the backend runs as ever
    assert not backend.run(Program((Cli(), End())), timeout_s=5).timed_out


def test_tracepoints_are_captured_and_the_private_instance_removed() -> None:
    traced = KvmBackend(trace_events=True)
    program = Program((Write(Reg.SVR, 0x1FF), Sti(),
                       Write(Reg.SELF_IPI, 0x40), Wait(0x40, 10**9)),
                      {0x40: Handler(eoi=True, log=False)})
    try:
        result = traced.run(program)
    except TraceUnavailable as e:
        pytest.skip(f"tracefs not usable: {e}")
    mine = [tp for tp in result.evidence["tracepoints"] if tp["own"]]
    assert any(tp["event"] == "kvm_apic_accept_irq" and "vec 64 " in tp["message"] + " "
               for tp in mine)
    assert any(tp["event"] == "kvm_msr" and "msr_write 83f" in tp["message"] for tp in mine)
    ours = [p.name for p in (TRACEFS / "instances").iterdir()
            if p.name.startswith(f"apiclab-{os.getpid()}-")]
    assert ours == []


def test_open_kvm_names_each_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailable, match="does not exist"):
        open_kvm(str(tmp_path / "kvm"))
    with pytest.raises(BackendUnavailable, match="is not a KVM device"):
        open_kvm("/dev/null")

    def refuse(path: str, flags: int) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("apiclab.backends.kvm.system.os.open", refuse)
    with pytest.raises(BackendUnavailable, match="no permission to open /dev/kvm"):
        open_kvm()


def test_missing_capability_and_refused_create_vm_are_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from apiclab.backends.kvm import ioctls as nr
    from apiclab.backends.kvm.ioctls import KvmError
    from apiclab.backends.kvm.system import Kvm

    real_check = Kvm.check_extension
    monkeypatch.setattr(Kvm, "check_extension", lambda self, cap: 0 if cap == nr.KVM_CAP_IRQCHIP
                        else real_check(self, cap))
    with pytest.raises(BackendUnavailable, match="lacks KVM_CAP_IRQCHIP"):
        open_kvm()
    monkeypatch.setattr(Kvm, "check_extension", real_check)

    def refuse(self: Kvm, machine_type: int = 0) -> None:
        raise KvmError(16, "KVM_CREATE_VM")

    monkeypatch.setattr(Kvm, "create_vm", refuse)
    with pytest.raises(BackendUnavailable, match="KVM_CREATE_VM refused: Device or resource busy"):
        KvmBackend().run(Program((End(),)))


def test_port_and_mmio_steps_reach_the_in_kernel_devices_and_empty_space(
        backend: KvmBackend) -> None:
    ioapic = 0xFEC00000
    program = Program((
        Out(0x21, 0xFB),  # the in-kernel 8259's mask register keeps what it is given
        In(0x21),
        MmioWrite(ioapic, 0x01),  # IOREGSEL = version (82093AA §3.2.2)
        MmioRead(ioapic + 0x10),
        MmioRead(0xFED00000),  # nothing mapped: the run loop answers all ones
    ), mode=Mode.XAPIC_PM32)
    events = run(backend, program)
    assert events[0] == {"kind": "read", "port": 0x21, "value": 0xFB}
    assert events[1]["addr"] == ioapic + 0x10 and events[1]["value"] & 0xFF == 0x11
    assert events[2] == {"kind": "read", "addr": 0xFED00000, "value": 0xFFFFFFFF}
    assert kinds(events)[-1] == "end"


@pytest.mark.parametrize("mode", MODES)
def test_a_faulting_msr_step_is_a_fault_event_and_the_program_goes_on(backend: KvmBackend,
                                                                      mode: Mode) -> None:
    # MSR 0x801 is no x2APIC register (SDM Table 10-6) and, in xAPIC mode, no x2APIC MSR is
    # reachable at all (§10.12.1.2): #GP either way, then the next step still runs.
    program = Program((Rdmsr(0x801), Rdmsr(0x1B), End()), mode=mode)
    events = run(backend, program)
    extd = 0x400 if mode == Mode.X2APIC_REAL else 0
    assert events == [{"kind": "fault", "vector": 13},
                      {"kind": "read", "msr": 0x1B, "value": 0xFEE00900 | extd},
                      {"kind": "end"}]


def test_sti_hlt_wakes_on_an_interrupt_pending_at_sti(backend: KvmBackend) -> None:
    program = Program((Write(Reg.SVR, 0x1FF), Write(Reg.SELF_IPI, 0x55),
                       StiHlt(), End()),
                      default_handler=Handler(eoi=True), mode=Mode.X2APIC_REAL)
    events = run(backend, program)
    assert kinds(events) == ["interrupt", "end"]
    assert events[0]["vector"] == 0x55 and events[0]["tmr"] == []
