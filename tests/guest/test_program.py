import pytest

from apiclab.guest.program import (
    Handler,
    Mode,
    Op,
    Program,
    ProgramError,
    Step,
    decode,
    encode,
    program_from_dict,
)


def test_encode_decode_round_trip():
    program = Program(
        (Step(Op.WRITE, 0xF0, 0x1FF), Step(Op.WAIT, 0xD1 | 1 << 8, 10**10), Step(Op.END)),
        {0xD1: Handler(eoi=True, log=False), 0xE1: Handler(eoi=False, log=True)},
        Handler(eoi=False, log=True),
        Mode.XAPIC_PM32,
    )
    assert decode(encode(program)) == program


def test_program_from_dict_reads_names_and_numbers():
    program = program_from_dict(
        {
            "mode": "xapic-pm32",
            "steps": [
                {"op": "write", "reg": "svr", "value": "0x1ff"},
                {"op": "sti"},
                {"op": "wait", "vector": 0xD1, "ticks": 1000},
                {"op": "bugcheck_if_timeout", "code": 0x5C, "params": [0x10B, 3]},
            ],
            "handlers": {"0xd1": {"eoi": True}},
        }
    )
    assert program.steps[0] == Step(Op.WRITE, 0xF0, 0x1FF)
    assert program.steps[2] == Step(Op.WAIT, 0xD1 | 1 << 8, 1000)
    assert program.steps[3] == Step(Op.BUGCHECK_IF_TIMEOUT, 0x5C, 0x10B | 3 << 32)
    assert program.handler(0xD1).eoi and not program.handler(0x40).eoi


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"steps": [{"op": "jump"}]}, "unknown op 'jump'"),
        ({"steps": [{"op": "write", "reg": "nope", "value": 1}]}, "steps\\[0\\].reg"),
        ({"steps": [{"op": "read", "reg": 0x123}]}, "not an APIC register"),
        ({"mode": "long", "steps": []}, "mode"),
        ({"mode": "xapic-pm32", "steps": [{"op": "write", "reg": "self_ipi", "value": 1}]},
         "only in x2APIC"),
    ],
)
def test_bad_programs_are_named_errors(doc, message):
    with pytest.raises(ProgramError, match=message):
        program_from_dict(doc)
