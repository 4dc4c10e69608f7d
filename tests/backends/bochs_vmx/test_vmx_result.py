"""Decoding the probe's port-0xE9 lines."""

from __future__ import annotations

import pytest

from apiclab.backends.bochs_vmx.result import ProbeError, parse, parse_case, vectors
from apiclab.executors.bochs_vmx import differing_fields

ISR_E1 = "00000002" + "0" * 56
IRR_D1 = "00000000" + "00020000" + "0" * 48
ZERO = "0" * 64
LINE = (f"@CASE 05 exit 00000012 n 01 v E100000000000000 gis E1D1 vtpr 00000000 "
        f"vppr 000000E0 isr {ISR_E1} irr {IRR_D1} exc 0000")


def test_a_case_line_gives_rvi_svi_and_the_page() -> None:
    case_id, got = parse_case(LINE)
    assert case_id == 5
    assert got.delivered == (0xE1,)
    assert (got.rvi, got.svi, got.vppr, got.vtpr) == (0xD1, 0xE1, 0xE0, 0)
    assert vectors(got.visr) == [0xE1]
    assert vectors(got.virr) == [0xD1]
    assert got.exit_reason == 18 and got.exception is None


def test_bochs_log_lines_are_skipped_and_the_end_is_seen() -> None:
    text = "\n".join(["00000000000i[      ] reading configuration", "<bochs:1> c",
                      "@VMXCAP basic 00D81000_0000002B pin 00000017 proc 94206172 "
                      "proc2 00000310 exit 00036DFB entry 000011FB", LINE, "@END"])
    run = parse(text)
    assert run.ended and not run.failures
    assert run.controls["proc2"] == 0x310
    assert run.controls["vmx_basic"] == 0x00D810000000002B
    assert run.lines[5] == LINE


def test_a_failed_vmx_instruction_is_kept_as_a_failure() -> None:
    run = parse("@FAIL vmlaunch 00000000 err 00000007\n")
    assert run.failures == ["@FAIL vmlaunch 00000000 err 00000007"]
    assert not run.ended


def test_a_guest_exception_is_reported() -> None:
    _, got = parse_case(LINE.replace("exc 0000", "exc 010D"))
    assert got.exception == 13


def test_outcomes_that_differ_name_the_fields() -> None:
    _, a = parse_case(LINE)
    _, b = parse_case(LINE.replace("gis E1D1", "gis E100"))
    assert differing_fields(a, b) == ["rvi"]
    assert differing_fields(a, a) == []


@pytest.mark.parametrize("line", ["@CASE 01 exit", "@CASE 01 exit zz n 00 v 0000000000000000",
                                  LINE.replace("v E100000000000000", "v E1")])
def test_malformed_lines_are_one_clear_error(line: str) -> None:
    with pytest.raises(ProbeError):
        parse_case(line)
