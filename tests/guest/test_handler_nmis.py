"""`Handler.nmis`: a handler that sends NMIs to its own APIC on its first run (kvm-unit-tests
x86/apic.c test_pending_nmi's shape), in the binary and plain-data forms and on the model."""

from __future__ import annotations

import pytest

from apiclab.arch.registers import Reg
from apiclab.engine.events import fields_of
from apiclab.guest.program import (
    HANDLER_NMIS,
    HANDLER_SET,
    Cli,
    Handler,
    Mode,
    Program,
    ProgramError,
    ProgramImageError,
    Sti,
    Wait,
    Write,
    decode,
    encode,
    program_from_dict,
    program_to_dict,
)
from apiclab.hypervisor.program_run import run_program

NMI_SELF = 0x4400  # ICR: delivery mode NMI, level assert, destination 0 (this CPU)


def pending_nmi_program(nmis: int, count: int = 3) -> Program:
    return Program(
        (Write(Reg.SVR, 0x1FF), Cli(), Write(Reg.ICR_LOW, NMI_SELF),
         Wait(vector=2, ticks=20_000_000, count=count)),
        {2: Handler(eoi=False, log=True, nmis=nmis)},
        Handler(eoi=False, log=True),
    )


def visible(program: Program) -> list[tuple[str, dict[str, object]]]:
    return [(e.kind, fields_of(e)) for e in run_program(program).guest_visible()]


def test_nmis_is_bits_2_to_5_of_the_handler_byte_and_decodes_back() -> None:
    program = pending_nmi_program(10)
    blob = encode(program)
    assert blob[16 + 2] == HANDLER_SET | 0x02 | 10 << 2
    assert decode(blob).handlers[2] == Handler(eoi=False, log=True, nmis=10)
    assert HANDLER_NMIS == 0x3C


def test_bit_6_of_a_handler_byte_is_still_unknown() -> None:
    blob = bytearray(encode(pending_nmi_program(1)))
    blob[16 + 2] |= 0x40
    with pytest.raises(ProgramImageError, match="unknown bits"):
        decode(bytes(blob))


def test_plain_data_names_nmis_only_where_a_handler_sends_any() -> None:
    doc = program_to_dict(pending_nmi_program(3))
    assert doc["handlers"]["0x2"] == {"eoi": False, "log": True, "nmis": 3}
    assert doc["default_handler"] == {"eoi": False, "log": True}
    assert program_from_dict(doc) == pending_nmi_program(3)


@pytest.mark.parametrize("value, message", [
    (16, r"handlers.0x2.nmis: 0x10 is not 0..0xf"),
    (True, r"handlers.0x2.nmis: expected an integer, got True"),
])
def test_a_bad_nmis_is_named_by_its_field(value: object, message: str) -> None:
    doc = program_to_dict(pending_nmi_program(1))
    doc["handlers"]["0x2"]["nmis"] = value
    with pytest.raises(ProgramError, match=message):
        program_from_dict(doc)


def test_nmis_in_protected_mode_is_refused_with_the_reason() -> None:
    program = pending_nmi_program(1)
    pm32 = Program(program.steps, program.handlers, program.default_handler, Mode.XAPIC_PM32)
    with pytest.raises(ProgramError, match="without IRET"):
        encode(pm32)


def test_model_takes_exactly_one_held_nmi_after_the_first_handler_returns() -> None:
    nmi = {"vector": 2, "isr": [], "irr": [], "tmr": [], "ppr": 0}
    assert visible(pending_nmi_program(10)) == [
        ("interrupt", nmi),
        ("read", {"reg": Reg.ICR_LOW, "value": NMI_SELF}),  # still in the first run
        ("interrupt", nmi),  # the one held NMI, after the first run's IRET
        ("wait", {"vector": 2, "count": 2, "outcome": "timeout"}),
        ("end", {}),
    ]


def test_model_without_sends_takes_one_nmi() -> None:
    events = visible(pending_nmi_program(0))
    assert [k for k, _ in events] == ["interrupt", "wait", "end"]
    assert events[1][1]["count"] == 1


def test_an_nmi_sent_by_a_maskable_handler_preempts_it_at_once() -> None:
    """NMIs are not blocked by a maskable handler (only IF is cleared, §6.8.1), so the NMI's
    record comes before the sending handler's read-back."""
    program = Program(
        (Write(Reg.SVR, 0x1FF), Sti(), Write(Reg.ICR_LOW, 0x4045), Wait(vector=2, ticks=20_000_000)),
        {0x45: Handler(eoi=True, log=True, nmis=1)},
        Handler(eoi=False, log=True),
    )
    kinds = [(k, f.get("vector", f.get("reg"))) for k, f in visible(program)]
    assert kinds == [("interrupt", 0x45), ("interrupt", 2), ("read", Reg.ICR_LOW),
                     ("wait", 2), ("end", None)]
