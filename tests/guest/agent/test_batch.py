"""The batch table the agent reads and the cutting of a batch's log per case (no emulator)."""

from __future__ import annotations

import re
import struct

import pytest

from apiclab.conform.case import load_builtin
from apiclab.guest.agent import batch
from apiclab.guest.agent.build import SOURCE
from apiclab.guest.program import encode

PROGRAMS = [c.program for c in load_builtin()[:5]]


def test_table_lists_each_program_at_its_segment() -> None:
    table = batch.table(PROGRAMS)
    magic, count = struct.unpack_from("<4sI", table)
    assert (magic, count) == (b"APBT", len(PROGRAMS))
    segments = struct.unpack_from(f"<{count}H", table, 8)
    for program, segment in zip(PROGRAMS, segments, strict=True):
        offset = segment * 16 - batch.TABLE_ADDRESS
        blob = encode(program)
        assert table[offset:offset + len(blob)] == blob
        assert segment * 16 >= 0xC000  # agent.S points DS at segment - PROGRAM_SLOT / 16


def test_table_too_large_for_conventional_memory_is_refused() -> None:
    with pytest.raises(batch.BatchError):
        batch.table(PROGRAMS * 400)


def test_chunks_cover_every_program_once_and_fit_a_table() -> None:
    chunks = batch.chunks(PROGRAMS * 300, 2)
    assert sorted(i for c in chunks for i in c) == list(range(len(PROGRAMS) * 300))
    for chunk in chunks:
        batch.table([(PROGRAMS * 300)[i] for i in chunk])  # raises if it does not fit


def _n(index: int) -> str:
    return f"@N{0:016X}{index:08X}"


def test_split_cuts_at_case_records_and_drops_unfinished_cases() -> None:
    tsc = "0" * 16
    text = "\n".join([
        "Bochs banner line",
        _n(0), f"@S{tsc}01", f"@R{tsc}{0x30:08X}{5:016X}", f"@E{tsc}",
        _n(1), f"@S{tsc}01", f"@R{tsc}{0x30:08X}{5:016X}",  # reset before its end: unfinished
        _n(2), f"@S{tsc}01", f"@F{tsc}0D",  # a fault is how a case can end
    ])
    logs = batch.split(text, 4)
    assert logs[0] == f"@S{tsc}01\n@R{tsc}{0x30:08X}{5:016X}\n@E{tsc}\n"
    assert logs[1] is None
    assert logs[2] == f"@S{tsc}01\n@F{tsc}0D\n"
    assert logs[3] is None  # never started (the batch was cut short)


def test_split_ignores_a_case_number_seen_twice() -> None:
    tsc = "0" * 16
    text = "\n".join([_n(0), f"@S{tsc}00", f"@E{tsc}", _n(0), f"@S{tsc}00", f"@R{tsc}" + "0" * 24])
    assert batch.split(text, 1) == [f"@S{tsc}00\n@E{tsc}\n"]


def test_agent_table_address_matches_the_host() -> None:
    """agent.S BATCH_TABLE and batch.TABLE_ADDRESS are one value in two languages."""
    source = SOURCE.read_text()
    found = re.search(r"\.set BATCH_TABLE,\s+(0x[0-9A-Fa-f]+)", source)
    assert found is not None and int(found.group(1), 16) == batch.TABLE_ADDRESS


def test_agent_table_address_for_several_cpus_matches_the_host() -> None:
    source = SOURCE.read_text()
    found = re.search(r"\.set BATCH_TABLE_SMP,\s+(0x[0-9A-Fa-f]+)", source)
    assert found is not None and int(found.group(1), 16) == batch.TABLE_ADDRESS_SMP


def test_a_table_at_another_address_points_its_segments_there() -> None:
    programs = [c.program for c in load_builtin() if c.program.cpus > 1][:3]
    blob = batch.table(programs, batch.TABLE_ADDRESS_SMP)
    segments = struct.unpack_from("<3H", blob, 8)
    for program, segment in zip(programs, segments, strict=True):
        start = segment * 16 - batch.TABLE_ADDRESS_SMP
        assert blob[start:start + len(encode(program))] == encode(program)
    with pytest.raises(batch.BatchError, match="holds 65536"):
        batch.table(programs * 200, batch.TABLE_ADDRESS_SMP)


def test_a_relayed_split_keeps_the_relay_and_needs_its_last_line() -> None:
    tsc = "0" * 16
    text = "\n".join([
        _n(0), f"@S{tsc}01", f"@E{tsc}", "=01", f"@S{tsc}01", f"@R{tsc}{0x30:08X}{5:016X}", "=00",
        _n(1), f"@S{tsc}01", f"@E{tsc}", "=01", f"@S{tsc}01",  # stopped inside the relay
        _n(2), f"@S{tsc}01", "=01", "=00",  # relayed without an exit record: a stray way out
        "Shutdown port: shutdown requested",
    ])
    logs = batch.split(text, 3, relayed=True)
    assert logs[0] == f"@S{tsc}01\n@E{tsc}\n=01\n@S{tsc}01\n@R{tsc}{0x30:08X}{5:016X}\n=00\n"
    assert logs[1] is None and logs[2] is None
    # read as a one-CPU batch, CPU 1's relayed records after the end make case 0 look unfinished
    assert batch.split(text, 3)[0] is None


def test_chunks_by_cpus_keep_each_cpu_count_in_one_batch_and_the_rest_in_place() -> None:
    programs = [c.program for c in load_builtin()]
    plain = batch.chunks(programs, 2)
    grouped = batch.chunks(programs, 2, several_by_cpus=True)
    for cpus in {p.cpus for p in programs} - {1}:
        holding = [k for k, part in enumerate(grouped)
                   if any(programs[i].cpus == cpus for i in part)]
        assert len(holding) == 1, cpus
    one_cpu = [[i for i in part if programs[i].cpus == 1] for part in plain]
    assert [[i for i in part if programs[i].cpus == 1] for part in grouped] == one_cpu
    assert sorted(i for part in grouped for i in part) == list(range(len(programs)))
