"""Embedding a program in the ROM, and decoding the agent's port-0xE9 records into events."""

from __future__ import annotations

import pytest

from apiclab.arch.registers import Reg
from apiclab.engine import events as evt
from apiclab.guest.agent import log
from apiclab.guest.agent.image import PROGRAM_OFFSET, ImageError, agent_binary, build_image
from apiclab.guest.program import End, Handler, Program, Read, decode, encode


def test_image_carries_the_encoded_program_at_the_slot_and_nothing_else_changes() -> None:
    program = Program((Read(Reg.PPR), End()), {0xD1: Handler(eoi=True)})
    blob = encode(program)
    rom = build_image(program)
    assert rom[PROGRAM_OFFSET:PROGRAM_OFFSET + len(blob)] == blob
    assert decode(rom[PROGRAM_OFFSET:PROGRAM_OFFSET + len(blob)]).handlers == program.handlers
    base = agent_binary()
    changed = [i for i in range(len(rom)) if rom[i] != base[i]]
    assert min(changed) >= PROGRAM_OFFSET and max(changed) < PROGRAM_OFFSET + len(blob)


def test_a_program_too_long_for_the_slot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import apiclab.guest.agent.image as image

    monkeypatch.setattr(image, "PROGRAM_SLOT_SIZE", 64)
    with pytest.raises(ImageError, match="slot holds 64"):
        image.build_image(Program((End(),)))


TSC_KHZ = 2_000_000  # 2 GHz: 2 TSC ticks per ns
START = "@S000000000000100000\n"


def test_records_decode_to_the_documented_events_with_ns_times() -> None:
    text = (
        "Bochs noise line\n" + START
        + "@I0000000000001FA0D1000000D0/D1/E1\n"  # 4000 ticks later: 2000 ns
        + "@R0000000000002000000000A000000000000000D0\n"
        + "@W000000000000300AD100000001D\n"
        + "@B000000000000400A0000005C0000010B00000003\n"
        + "@E000000000000500A\n"
    )
    events = [evt.to_dict(e) for e in log.decode(text, TSC_KHZ)]
    assert events == [
        {"time": 2000, "kind": "interrupt", "vector": 0xD1, "isr": [0xD1], "irr": [0xE1],
         "ppr": 0xD0},
        {"time": 2048, "kind": "read", "reg": 0xA0, "value": 0xD0},
        {"time": 4101, "kind": "wait", "vector": 0xD1, "count": 1, "outcome": "done"},
        {"time": 6149, "kind": "bugcheck", "code": 0x5C, "params": [0x10B, 3, 0, 0]},
        {"time": 8197, "kind": "end"},
    ]


def test_port_and_mmio_reads_decode_to_read_events_with_port_or_addr() -> None:
    text = START + "@P000000000000100000213F\n" + "@M0000000000001000FEC000100000E050\n"
    events = [evt.to_dict(e) for e in log.decode(text, TSC_KHZ)]
    assert events == [
        {"time": 0, "kind": "read", "port": 0x21, "value": 0x3F},
        {"time": 0, "kind": "read", "addr": 0xFEC00010, "value": 0xE050},
    ]


def test_interrupt_record_lists_several_vectors_sorted() -> None:
    [event] = log.decode(START + "@I000000000000100001000000E0/E1D1//\n".replace("//", "/"),
                         TSC_KHZ).events
    assert event.isr == [0xD1, 0xE1] and event.irr == []


@pytest.mark.parametrize(
    "record",
    ["@Q0000000000001000", "@W000000000000100AD100000001X", "@E0000", "@R00000000000010000A0"],
)
def test_malformed_records_are_errors_naming_the_record(record: str) -> None:
    with pytest.raises(log.AgentLogError, match="record"):
        log.decode(START + record + "\n", TSC_KHZ)


def test_fault_and_bad_program_records() -> None:
    events = log.decode(START + "@F00000000000010000D\n@X0000000000001000\n", TSC_KHZ).events
    assert [(e.kind, evt.fields_of(e)) for e in events] == [
        ("fault", {"vector": 13}),
        ("agent-error", {"reason": "no valid program in the ROM's program slot"}),
    ]


def test_msr_reads_gp_faults_and_tmr_lists_decode() -> None:
    text = (START + "@Q0000000000001000000006E00000000000001234\n"
            + "@G00000000000010000D\n"
            + "@I00000000000010005000000050/50//50\n")
    events = [evt.to_dict(e) for e in log.decode(text, TSC_KHZ)]
    assert events == [
        {"time": 0, "kind": "read", "msr": 0x6E0, "value": 0x1234},
        {"time": 0, "kind": "fault", "vector": 13},
        {"time": 0, "kind": "interrupt", "vector": 0x50, "isr": [0x50], "irr": [], "ppr": 0x50,
         "tmr": [0x50]},
    ]


def test_an_nmi_record_inside_another_is_split_out_after_it() -> None:
    # CLI does not hold an NMI off, so its handler's record can land inside the REP OUTSB of
    # another: the interrupted record is rebuilt and listed first.
    text = (START + "@R0000000000002000000000A000@I00000000000030000200000000///\n"
            + "000000000000D0\n@E000000000000500A\n")
    kinds = [(e.kind, getattr(e, "vector", getattr(e, "value", None))) for e in log.decode(text, TSC_KHZ)]
    assert kinds == [("read", 0xD0), ("interrupt", 2), ("end", None)]


def test_a_record_cut_by_an_init_is_dropped_and_the_next_kept() -> None:
    # An INIT resets the CPU in the middle of its REP OUTSB: the cut record never resumes, the
    # CPU writes its next record after the start-up IPI, and the line after starts a new record.
    for cut in ("@", "@R00000000000020"):
        text = (START + cut + "@R0000000000003000000000A000000000000000D0\n"
                + "@E000000000000500A\n")
        kinds = [(e.kind, getattr(e, "value", None)) for e in log.decode(text, TSC_KHZ)]
        assert kinds == [("read", 0xD0), ("end", None)], cut


def test_logs_of_several_cpus_merge_by_tsc_and_carry_each_cpu() -> None:
    # CPU 0 starts first and ends last; CPU 1's read lies between CPU 0's two records
    cpu0 = "@S000000000000100001\n@R0000000000003000" + "00000020" + "0" * 16 + "\n" \
           "@E0000000000005000\n"
    cpu1 = "@S000000000000200001\n@R0000000000004000" + "00000020" + "0" * 14 + "01\n"
    trace = log.decode_cpus([cpu0.encode(), cpu1], tsc_khz=1_000)
    got = [(e.kind, e.cpu, getattr(e, "value", None)) for e in trace.events]
    # the end is the whole run's: no cpu, as the model's end carries none
    assert got == [("read", 0, 0), ("read", 1, 1), ("end", None, None)]
    assert [e.time for e in trace.events] == [0x2000 * 1000, 0x3000 * 1000, 0x4000 * 1000]
    # one CPU: no cpu field, as the model records none there
    assert log.decode(cpu0, 1_000).events[0].cpu is None
