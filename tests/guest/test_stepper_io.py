"""The stepper's port and MMIO steps on the model: the same events the agent reports."""

from __future__ import annotations

from apiclab.engine import events as evt
from apiclab.guest.program import (
    Handler,
    In,
    MmioRead,
    MmioWrite,
    Mode,
    Out,
    Program,
    Sti,
    Wait,
    Write,
)
from apiclab.hypervisor.program_run import run_program

IOREGSEL, IOWIN = 0xFEC00000, 0xFEC00010


def test_level_pit_interrupt_redelivers_after_eoi_while_out_is_high() -> None:
    program = Program((
        Write(0xF0, 0x1FF),
        Out(0x43, 0x30),
        MmioWrite(IOREGSEL, 0x14),
        MmioWrite(IOWIN, 0xA050),
        Sti(),
        Out(0x40, 0x00),
        Out(0x40, 0x10),
        Wait(0x50, 10**9),
        MmioRead(IOWIN),
        In(0x21),
        Write(0xB0, 0),
        Wait(0x50, 10**6, count=2),
    ), default_handler=Handler(eoi=False, log=True), mode=Mode.XAPIC_PM32)
    events = [evt.to_dict(e) for e in run_program(program).of_kind("interrupt", "read", "wait")]
    for e in events:
        e.pop("time")
    assert events == [
        {"kind": "interrupt", "vector": 0x50, "isr": [0x50], "irr": [], "tmr": [0x50],
         "ppr": 0x50},
        {"kind": "wait", "vector": 0x50, "count": 1, "outcome": "done"},
        {"kind": "read", "addr": IOWIN, "value": 0xE050},  # remote IRR (bit 14) set
        {"kind": "read", "port": 0x21, "value": 0xFF},  # no 8259 in the model: open bus
        {"kind": "interrupt", "vector": 0x50, "isr": [0x50], "irr": [], "tmr": [0x50],
         "ppr": 0x50},
        {"kind": "wait", "vector": 0x50, "count": 2, "outcome": "done"},
    ]
