import pytest

from apiclab.guest.program import (
    BugcheckIfTimeout,
    End,
    Handler,
    In,
    MmioRead,
    MmioWrite,
    Mode,
    Op,
    Out,
    Program,
    ProgramError,
    Read,
    Wait,
    Write,
    decode,
    encode,
    program_from_dict,
)


def test_encode_decode_round_trip():
    program = Program(
        (Write(0xF0, 0x1FF), Wait(0xD1, 10**10), End()),
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
    assert program.steps[0] == Write(0xF0, 0x1FF)
    assert program.steps[2] == Wait(0xD1, 1000)
    assert program.steps[3] == BugcheckIfTimeout(0x5C, (0x10B, 3))
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
        ({"steps": [{"op": "out", "port": 0x10000, "value": 0}]}, "port: 0x10000 is not 0..0xffff"),
        ({"steps": [{"op": "out", "port": 0x43, "value": 0x100}]}, "value: 0x100 is not 0..0xff"),
        ({"steps": [{"op": "out", "port": 0xE9, "value": 0x40}]}, "agent's own"),
        ({"steps": [{"op": "out", "port": 0x501, "value": 0}]}, "agent's own"),
        ({"steps": [{"op": "in"}]}, "steps\\[0\\].port: expected an integer"),
        ({"steps": [{"op": "mmio_read", "addr": 0xFEC00000}]}, "MMIO needs mode 'xapic-pm32'"),
        ({"mode": "xapic-pm32", "steps": [{"op": "mmio_read", "addr": 0xFEC00002}]},
         "not a dword-aligned"),
        ({"mode": "xapic-pm32", "steps": [{"op": "mmio_write", "addr": 1 << 32, "value": 0}]},
         "addr: 0x100000000 is not 0..0xffffffff"),
        ({"mode": "xapic-pm32", "steps": [{"op": "mmio_write", "addr": 0xFEC00010,
                                           "value": 1 << 32}]}, "value: 0x100000000 is not"),
    ],
)
def test_bad_programs_are_named_errors(doc, message):
    with pytest.raises(ProgramError, match=message):
        program_from_dict(doc)


def test_port_and_mmio_ops_from_names_round_trip_through_the_binary_form():
    program = program_from_dict(
        {
            "mode": "xapic-pm32",
            "steps": [
                {"op": "out", "port": 0x43, "value": 0x30},
                {"op": "in", "port": "0x21"},
                {"op": "mmio_write", "addr": 0xFEC00000, "value": 0x14},
                {"op": "mmio_read", "addr": 0xFEC00010},
            ],
        }
    )
    assert program.steps == (
        Out(0x43, 0x30),
        In(0x21),
        MmioWrite(0xFEC00000, 0x14),
        MmioRead(0xFEC00010),
    )
    assert decode(encode(program)).steps[:4] == program.steps
    assert [s.describe() for s in program.steps] == [
        "out port 0x43 = 0x30", "in port 0x21", "mmio write 0xfec00000 = 0x14",
        "mmio read 0xfec00010",
    ]


def test_port_io_is_allowed_in_real_mode_too():
    program = program_from_dict({"steps": [{"op": "out", "port": 0x21, "value": 0xFF}]})
    assert program.mode == Mode.X2APIC_REAL and program.steps[0] == Out(0x21, 0xFF)


def test_cpus_and_step_cpu_are_read_checked_and_round_trip_as_version_2() -> None:
    from apiclab.guest.program import ProgramError, decode, encode, program_from_dict

    doc = {"mode": "xapic-pm32", "cpus": 2, "steps": [{"op": "read", "reg": "id", "cpu": 1}]}
    program = program_from_dict(doc)
    assert program.cpus == 2 and program.steps[0].cpu == 1
    blob = encode(program)
    # version 2, the CPU count in the header's last field, the step's CPU in its op word's byte 2
    assert blob[4:6] == b"\x02\x00" and blob[12:16] == b"\x02\x00\x00\x00"
    assert blob[272:276] == bytes([int(Op.READ), 0, 1, 0])
    back = decode(blob)
    assert back.cpus == 2 and back.steps[0] == Read(0x20, cpu=1)
    assert back.steps[-1] == End()
    one = program_from_dict({**doc, "cpus": 1, "steps": [{"op": "read", "reg": "id"}]})
    assert encode(one)[4:6] == b"\x01\x00" and encode(one)[12:16] == bytes(4)
    with pytest.raises(ProgramError, match="step 0 has unknown op"):
        decode(encode(one)[:272] + bytes([int(Op.READ), 0, 1, 0]) + encode(one)[276:])
    with pytest.raises(ProgramError, match="cpu 2"):
        program_from_dict({**doc, "steps": [{"op": "sti", "cpu": 2}]})
    with pytest.raises(ProgramError, match="cpus"):
        program_from_dict({**doc, "cpus": 0})


def test_decode_refuses_operands_no_step_encodes() -> None:
    """Each step's encode() is the only packer: an STI with an operand, or a WAIT word with bits
    above its count, is not a program encode could have written."""
    from apiclab.guest.program import STEP, ProgramImageError, Sti, Wait

    good = encode(Program((Sti(), Wait(0x31, 100, count=2))))
    assert decode(good).steps[:2] == (Sti(), Wait(0x31, 100, count=2))
    base = len(good) - 3 * STEP.size
    bad_sti = good[:base] + STEP.pack(int(Op.STI), 5, 0) + good[base + STEP.size:]
    with pytest.raises(ProgramImageError, match="step 0: sti step with operands a=0x5"):
        decode(bad_sti)
    assert encode(decode(good)) == good


def test_a_step_built_in_code_with_a_bad_field_is_named_by_validate() -> None:
    from apiclab.guest.program import BugcheckIfTimeout, Out

    with pytest.raises(ProgramError, match=r"step 0: value 0x100 is not 0\.\.0xff"):
        Program((Out(0x80, 0x100),)).validate()
    with pytest.raises(ProgramError, match=r"step 1: params \(1,\) is not two integers"):
        Program((Out(0x80, 1), BugcheckIfTimeout(1, (1,)))).validate()  # type: ignore[arg-type]
    with pytest.raises(ProgramError, match="step 0: cpu 1 is not one of the program's 1 CPUs"):
        Program((Out(0x80, 1, cpu=1),)).validate()
