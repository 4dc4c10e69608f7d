"""The generic guest on the model: the seed's mechanism as a step-list program."""

import pytest

from apiclab.guest.program import Handler, Op, Program, Step
from apiclab.guest.stepper import run_program
from apiclab.hypervisor.machine import reset_image

CLOCK = 0xD1
PROGRAM = Program(
    (
        Step(Op.WRITE, 0xF0, 0x1FF),
        Step(Op.WRITE, 0x3E0, 0b1011),
        Step(Op.WRITE, 0x320, (1 << 17) | CLOCK),
        Step(Op.WRITE, 0x380, 1_000_000),
        Step(Op.STI),
        Step(Op.WAIT, CLOCK | 1 << 8, 200_000_000),
        Step(Op.BUGCHECK_IF_TIMEOUT, 0x5C, 0x10B | 3 << 32),
    ),
    {CLOCK: Handler(eoi=True, log=True)},
)


def outcome(apicv, image=None):
    events = run_program(PROGRAM, apicv=apicv, lapic_image=image).guest_visible()
    return [e for e in events if e.kind in ("wait", "bugcheck", "interrupt")]


@pytest.mark.parametrize("apicv", [False, True])
def test_clean_reset_image_gets_its_tick(apicv):
    events = outcome(apicv, reset_image())
    assert events[0].kind == "interrupt" and events[0].data["vector"] == CLOCK
    assert events[0].data["isr"] == [CLOCK] and events[0].data["ppr"] == 0xD0
    assert events[1].data["outcome"] == "done"


@pytest.mark.parametrize("apicv", [False, True])
def test_restored_in_service_vector_of_higher_class_blocks_the_clock(apicv):
    image = reset_image()
    image.isr = 1 << 0xE1
    events = outcome(apicv, image)
    assert [e.kind for e in events] == ["wait", "bugcheck"]
    assert events[1].data == {"code": 0x5C, "params": [0x10B, 3, 0, 0]}


@pytest.mark.parametrize("apicv", [False, True])
def test_restored_pending_vector_without_eoi_blocks_the_clock(apicv):
    image = reset_image()
    image.irr = 1 << 0xE1
    events = outcome(apicv, image)
    assert events[0].kind == "interrupt" and events[0].data["vector"] == 0xE1
    assert events[-1].kind == "bugcheck"


def test_halt_with_interrupts_off_times_out_without_end():
    program = Program((Step(Op.CLI), Step(Op.HLT)))
    trace = run_program(program, limit_ns=1_000_000)
    assert not trace.of_kind("end")
