"""Library level: each decoder's bad-byte cases raise its own error type (a DecodeError, hence an
ApiclabError), with a one-line message naming what was wrong; never a bare ValueError/KeyError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apiclab.arch.lapic_state import LapicState, LapicStateError
from apiclab.backends.bochs_vmx.result import ProbeError, ProbeOutputError, parse
from apiclab.errors import ApiclabError, DecodeError, UserError
from apiclab.guest.agent.log import AgentLogError, decode
from apiclab.guest.program import (
    HEADER,
    MAGIC,
    Program,
    ProgramError,
    ProgramImageError,
    Sti,
    encode,
)
from apiclab.guest.program import decode as decode_program

GOOD = encode(Program((Sti(),)))


def image(mode: int = 0, count: int = 1, op: int = 3, flags: int = 0x02) -> bytes:
    head = HEADER.pack(MAGIC, 1, mode, flags, count, 0)
    return head + GOOD[HEADER.size:HEADER.size + 256] + op.to_bytes(4, "little") + bytes(12)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: decode_program(image(mode=7)), ProgramImageError, "unknown mode code 7"),
        (lambda: decode_program(image(op=99)), ProgramImageError, "step 0 has unknown op 99"),
        (lambda: decode_program(image(flags=0x40)), ProgramImageError, "unknown bits"),
        (lambda: decode_program(image(count=2)), ProgramImageError, "truncated"),
        (lambda: decode_program(GOOD[:10]), ProgramImageError, "shorter than"),
        (lambda: decode("@RZZZZZZZZZZZZZZZZ00000080000000000000002\n", 1000), AgentLogError,
         "is not hex digits"),
        (lambda: decode("@R" + "0" * 16 + "00000080" + "0" * 14 + "-2", 1000), AgentLogError,
         "is not hex digits"),
        (lambda: decode("@Z0000000000000001\n", 1000), AgentLogError, "unknown agent record"),
        (lambda: decode("@E0000000000000001\n", 0), AgentLogError, "must be positive"),
        (lambda: parse("@CASE 01 exit 12 n 1 v E1000000000000zz gis 0 vtpr 0 vppr 0 isr 0 irr 0 "
                       "exc 0"), ProbeOutputError, "hex 'v'"),
        (lambda: parse("@VMXCAP basic -1_0 pin 0 proc 0 proc2 0 exit 0 entry 0"),
         ProbeOutputError, "hex 'basic'"),
        (lambda: LapicState.decode(bytes(10)), LapicStateError, "1024 bytes"),
        (lambda: LapicState({0x13: 1}).encode(), LapicStateError, "not a 16-byte slot"),
    ],
)
def test_bad_bytes_raise_the_decoders_own_error(call: Callable[[], Any], error: type,
                                                words: str) -> None:
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, DecodeError) and isinstance(caught.value, ApiclabError)
    assert not isinstance(caught.value, UserError)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_error_types_keep_their_old_bases_for_existing_callers() -> None:
    assert issubclass(ProgramImageError, ProgramError) and issubclass(ProgramError, ValueError)
    assert issubclass(ProbeOutputError, ProbeError) and issubclass(ProbeError, RuntimeError)
    assert issubclass(AgentLogError, ValueError) and issubclass(LapicStateError, ValueError)


def test_an_error_message_quoting_a_line_break_stays_one_line() -> None:
    assert str(UserError("--scenario a\nb: no such file")) == "--scenario a\\nb: no such file"
