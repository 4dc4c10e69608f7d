"""A LINT1 pulse under each LVT LINT1 setting (SDM §10.5.1): the rule alone, and the model machine
running programs that pulse it."""

from __future__ import annotations

from typing import Any

import pytest

from apiclab.arch.lint1 import Lint1Delivery, lint1_pulse
from apiclab.arch.registers import Reg
from apiclab.engine.events import fields_of
from apiclab.guest.program import (
    Cli,
    Handler,
    Lint1Pulse,
    Mode,
    Program,
    Read,
    Sti,
    Write,
    Wrmsr,
)
from apiclab.hypervisor.program_run import run_program


@pytest.mark.parametrize(("entry", "delivery", "vector"), [
    (0x10400, Lint1Delivery.MASKED, 0x00),  # NMI mode, masked
    (0x10041, Lint1Delivery.MASKED, 0x41),  # Fixed, masked
    (0x00400, Lint1Delivery.NMI, 0x00),
    (0x00431, Lint1Delivery.NMI, 0x31),  # the vector field is carried but ignored by NMI
    (0x00041, Lint1Delivery.FIXED, 0x41),
    (0x02041, Lint1Delivery.FIXED, 0x41),  # polarity (bit 13) does not change the delivery
    (0x08041, Lint1Delivery.UNSUPPORTED, 0x41),  # level: "not supported for LINT1"
    (0x00200, Lint1Delivery.SMI, 0x00),
    (0x00500, Lint1Delivery.INIT, 0x00),
    (0x00741, Lint1Delivery.EXTINT, 0x41),
    (0x00141, Lint1Delivery.UNSUPPORTED, 0x41),  # 001b, 011b, 110b: reserved for the LVT
    (0x00341, Lint1Delivery.UNSUPPORTED, 0x41),
    (0x00641, Lint1Delivery.UNSUPPORTED, 0x41),
])
def test_the_lvt_entry_decides_what_a_pulse_becomes(entry: int, delivery: Lint1Delivery,
                                                    vector: int) -> None:
    pulse = lint1_pulse(entry)
    assert (pulse.delivery, pulse.vector) == (delivery, vector)


def _run(lvt: int, *, sti: bool, after: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    program = Program((Write(Reg.SVR, 0x1FF), Write(Reg.LVT_LINT1, lvt),
                       Sti() if sti else Cli(), Lint1Pulse(), *after),
                      {0x41: Handler(eoi=True)}, Handler(eoi=False), Mode.XAPIC_PM32)
    return [{"kind": e.kind, **fields_of(e)} for e in run_program(program).guest_visible()]


def _vectors(events: list[dict[str, Any]]) -> list[int]:
    return [e["vector"] for e in events if e["kind"] == "interrupt"]


def test_nmi_mode_delivers_vector_2_with_if_clear_outside_irr_and_isr() -> None:
    events = _run(0x431, sti=False)
    assert _vectors(events) == [2]
    assert events[0]["isr"] == [] and events[0]["irr"] == []


def test_a_masked_pulse_is_dropped_and_not_delivered_when_unmasked_later() -> None:
    events = _run(0x10400, sti=True, after=(Write(Reg.LVT_LINT1, 0x400), Read(Reg.LVT_LINT1)))
    assert _vectors(events) == []
    assert events[0] == {"kind": "read", "reg": Reg.LVT_LINT1, "value": 0x400}


def test_fixed_mode_delivers_the_entrys_vector_edge_triggered() -> None:
    events = _run(0x41, sti=True)
    assert _vectors(events) == [0x41]
    assert events[0]["isr"] == [0x41] and events[0]["tmr"] == [] and events[0]["ppr"] == 0x40


def test_fixed_mode_with_if_clear_leaves_the_vector_pending_in_irr() -> None:
    events = _run(0x41, sti=False, after=(Read(Reg.IRR0 + 0x20), Read(Reg.TMR0 + 0x20)))
    assert _vectors(events) == []
    assert [e["value"] for e in events if e["kind"] == "read"] == [0x2, 0x0]


def test_fixed_mode_with_an_illegal_vector_sets_the_receive_error() -> None:
    """§10.5.3: a vector 0-15 is received illegally, whatever brought it."""
    events = _run(0x05, sti=True, after=(Write(Reg.ESR, 0), Read(Reg.ESR)))
    assert _vectors(events) == []
    assert events[-2] == {"kind": "read", "reg": Reg.ESR, "value": 0x40}


@pytest.mark.parametrize("lvt", [0x8041, 0x741, 0x241])
def test_unsupported_extint_and_smi_deliver_nothing_on_the_model(lvt: int) -> None:
    assert _vectors(_run(lvt, sti=True)) == []


def test_a_software_disabled_apic_masks_lint1_so_the_pulse_is_dropped() -> None:
    """§10.4.7.2: while SVR bit 8 is clear the LVT mask bits cannot be cleared."""
    program = Program((Write(Reg.LVT_LINT1, 0x400), Sti(), Lint1Pulse(), Read(Reg.LVT_LINT1)),
                      {}, Handler(eoi=False), Mode.XAPIC_PM32)
    events = [{"kind": e.kind, **fields_of(e)} for e in run_program(program).guest_visible()]
    assert _vectors(events) == []
    assert events[0]["value"] == 0x10400


def test_a_globally_disabled_apic_is_not_reached_by_the_pulse() -> None:
    program = Program((Write(Reg.SVR, 0x1FF), Write(Reg.LVT_LINT1, 0x400), Sti(),
                       Wrmsr(0x1B, 0xFEE00100), Lint1Pulse()),
                      {}, Handler(eoi=False), Mode.XAPIC_PM32)
    trace = run_program(program)
    assert not [e for e in trace.guest_visible() if e.kind == "interrupt"]
    paths = [fields_of(e).get("path") for e in trace if e.kind == "accept"]
    assert "apic-disabled" in paths
