"""The generic guest on the model: the seed's mechanism as a step-list program."""

import pytest

from apiclab.conform.backends import ModelBackend
from apiclab.engine.events import fields_of
from apiclab.guest.program import (
    BugcheckIfTimeout,
    Cli,
    Handler,
    Hlt,
    Mode,
    Pause,
    Program,
    Read,
    Sti,
    Wait,
    Write,
)
from apiclab.guest.stepper import STOPPED
from apiclab.hypervisor.machine import reset_image
from apiclab.hypervisor.program_run import run_program

CLOCK = 0xD1
PROGRAM = Program(
    (
        Write(0xF0, 0x1FF),
        Write(0x3E0, 0b1011),
        Write(0x320, (1 << 17) | CLOCK),
        Write(0x380, 1_000_000),
        Sti(),
        Wait(CLOCK, 200_000_000),
        BugcheckIfTimeout(0x5C, (0x10B, 3)),
    ),
    {CLOCK: Handler(eoi=True, log=True)},
)


def outcome(apicv, image=None):
    events = run_program(PROGRAM, apicv=apicv, lapic_image=image).guest_visible()
    return [e for e in events if e.kind in ("wait", "bugcheck", "interrupt")]


@pytest.mark.parametrize("apicv", [False, True])
def test_clean_reset_image_gets_its_tick(apicv):
    events = outcome(apicv, reset_image())
    assert events[0].kind == "interrupt" and events[0].vector == CLOCK
    assert events[0].isr == [CLOCK] and events[0].ppr == 0xD0
    assert events[1].outcome == "done"


@pytest.mark.parametrize("apicv", [False, True])
def test_restored_in_service_vector_of_higher_class_blocks_the_clock(apicv):
    image = reset_image()
    image.isr = 1 << 0xE1
    events = outcome(apicv, image)
    assert [e.kind for e in events] == ["wait", "bugcheck"]
    assert (events[1].code, events[1].params) == (0x5C, [0x10B, 3, 0, 0])


@pytest.mark.parametrize("apicv", [False, True])
def test_restored_pending_vector_without_eoi_blocks_the_clock(apicv):
    image = reset_image()
    image.irr = 1 << 0xE1
    events = outcome(apicv, image)
    assert events[0].kind == "interrupt" and events[0].vector == 0xE1
    assert events[-1].kind == "bugcheck"


def test_halt_with_interrupts_off_times_out_without_end():
    program = Program((Cli(), Hlt()))
    trace = run_program(program, limit_ns=1_000_000)
    assert not trace.of_kind("end")


def test_an_illegal_lvt_error_vector_ends_without_recursion():
    program = Program(
        (Write(0xF0, 0x1FF), Write(0x370, 0), Sti(),
         Write(0x300, 0x44006), Pause(200_000), Write(0x280, 0),
         Read(0x280)),
        default_handler=Handler(eoi=True, log=True), mode=Mode.XAPIC_PM32,
    )
    events = [(e.kind, fields_of(e)) for e in run_program(program).guest_visible()]
    assert events == [("read", {"reg": 0x280, "value": 0x60}), ("end", {})]


TIMER_STORM = Program(
    (Write(0xF0, 0x1FF), Write(0x3E0, 0b1011), Write(0x320, 1 << 17 | 0x40),
     Write(0x380, 1), Sti(), Pause(1 << 60)),
    default_handler=Handler(eoi=True, log=False),
)


def test_a_timer_of_one_count_stops_at_the_step_budget_not_never():
    trace = run_program(TIMER_STORM, max_steps=500)
    assert not trace.of_kind("end")
    (stopped,) = trace.of_kind(STOPPED)
    assert stopped.reason == "budget of 500 engine steps"


def test_the_model_backend_reports_a_stopped_run_as_timed_out():
    result = ModelBackend().run(TIMER_STORM, timeout_s=0.2)
    assert result.timed_out and not result.trace.of_kind("end")
    assert "stopped" in result.evidence


def test_a_pause_beyond_the_run_limit_ends_the_run_at_the_limit():
    program = Program((Pause(1 << 62), Read(0xF0)))
    trace = run_program(program, limit_ns=1_000_000)
    assert trace.guest_visible() == [] and not trace.of_kind(STOPPED)


def test_several_cpus_init_resets_the_target_but_keeps_its_id() -> None:
    """§10.4.7.3 on the model: INIT then SIPI from CPU 0; CPU 1 reads its reset TPR and its ID,
    each read tagged with the CPU; CPU 1's steps between INIT and SIPI do nothing."""
    init, sipi = (1 << 56) | 0x4500, (1 << 56) | 0x4608
    program = Program((
        Write(0xF0, 0x1FF, cpu=1),
        Write(0x80, 0x20, cpu=1),
        Write(0x300, init, cpu=0),
        Read(0x80, cpu=1),  # waiting for SIPI: not run
        Write(0x300, sipi, cpu=0),
        Read(0x80, cpu=1),
        Read(0x20, cpu=1),
        Read(0x20, cpu=0),
    ), mode=Mode.XAPIC_PM32, cpus=2)
    reads = [(e.cpu, e.reg, e.value)
             for e in run_program(program).of_kind("read")]
    assert reads == [(1, 0x80, 0), (1, 0x20, 1 << 24), (0, 0x20, 0)]


def test_a_cpu_waiting_for_sipi_takes_no_nmi_and_sipi_to_a_running_cpu_is_ignored() -> None:
    """§10.4.7.3: after INIT the CPU only waits for SIPI; §10.6.1: a start-up IPI starts a CPU
    that waits for one, so a second SIPI changes nothing (CPU 1's TPR set after the first stays)."""
    init, sipi, nmi = (1 << 56) | 0x4500, (1 << 56) | 0x4608, (1 << 56) | 0x4400
    program = Program((
        Write(0xF0, 0x1FF, cpu=1),
        Write(0x300, init, cpu=0),
        Write(0x300, nmi, cpu=0),
        Write(0x300, sipi, cpu=0),
        Write(0x80, 0x30, cpu=1),
        Write(0x300, sipi, cpu=0),
        Read(0x80, cpu=1),
    ), mode=Mode.XAPIC_PM32, cpus=2)
    events = run_program(program).guest_visible()
    assert [(e.kind, getattr(e, "value", None)) for e in events] == [("read", 0x30), ("end", None)]
