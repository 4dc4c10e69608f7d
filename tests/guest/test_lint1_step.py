"""The lint1_pulse step: its plain-data form, binary form and case file round trips, where it is
refused, and the agent's record of a pulse the host never answered."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from apiclab.arch.registers import Reg
from apiclab.conform.case import CaseError, load_builtin, load_case
from apiclab.conform.case_writer import case_to_dict, dumps
from apiclab.engine.events import fields_of
from apiclab.guest.agent import log
from apiclab.guest.program import (
    LINT1_PORTS,
    End,
    Handler,
    Lint1Pulse,
    Mode,
    Op,
    Out,
    Program,
    ProgramError,
    Sti,
    Write,
    decode,
    encode,
    program_from_dict,
    step_from_dict,
    step_to_dict,
)


def test_the_step_reads_and_writes_as_a_bare_op() -> None:
    assert step_from_dict({"op": "lint1_pulse"}, "steps[0]") == Lint1Pulse()
    assert step_to_dict(Lint1Pulse()) == {"op": "lint1_pulse"}
    with pytest.raises(ProgramError, match=r"steps\[0\]\.vector: unknown field of a lint1_pulse"):
        step_from_dict({"op": "lint1_pulse", "vector": 2}, "steps[0]")


def test_the_binary_form_is_op_17_without_operands_and_decodes_back() -> None:
    assert Lint1Pulse().encode() == bytes([17, 0, 0, 0]) + bytes(12)
    program = Program((Write(Reg.SVR, 0x1FF), Lint1Pulse(), End()), {}, Handler(), Mode.XAPIC_PM32)
    assert decode(encode(program)) == program
    assert Op.LINT1_PULSE == 17


def test_a_case_with_the_step_is_written_and_read_back_equal(tmp_path: Path) -> None:
    case = next(c for c in load_builtin() if c.name == "lint1-masked-pulse-dropped")
    assert Lint1Pulse() in case.program.steps
    text = dumps(case_to_dict(case))
    assert {"op": "lint1_pulse"} in tomllib.loads(text)["program"]["steps"]
    path = tmp_path / "again.toml"
    path.write_text(text)
    again = load_case(path)
    assert (again.program, again.expect, again.absent) == (case.program, case.expect, case.absent)


def test_a_case_file_with_a_misspelt_step_names_the_step(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nsdm = "10.5.1"\ndescription = "d"\n[program]\n'
                    'mode = "xapic-pm32"\nsteps = [{ op = "lint1_puls" }]\n')
    with pytest.raises(CaseError, match=r"steps\[0\]: unknown op 'lint1_puls'"):
        load_case(path)


def test_several_cpus_are_refused_for_a_lint1_pulse() -> None:
    with pytest.raises(ProgramError, match="lint1_pulse needs a program for one CPU"):
        program_from_dict({"cpus": 2, "steps": [{"op": "lint1_pulse"}]})


@pytest.mark.parametrize("port", sorted(LINT1_PORTS))
def test_an_out_to_com1_is_refused_it_would_forge_the_agents_marker(port: int) -> None:
    with pytest.raises(ProgramError, match="LINT1 handshake"):
        Program((Out(port, ord("L")),)).validate()


def test_pulses_lint1_says_whether_a_program_has_the_step() -> None:
    assert Program((Sti(), Lint1Pulse())).pulses_lint1
    assert not Program((Sti(),)).pulses_lint1


def test_an_unanswered_pulse_is_an_agent_error_not_a_guest_visible_event() -> None:
    trace = log.decode("@S000000000000000001\n@L0000000000000100\n@E0000000000000200\n",
                       1_000_000)
    errors = trace.of_kind("agent-error")
    assert [fields_of(e)["reason"] for e in errors] == [log.LINT1_UNANSWERED]
    assert [e.kind for e in trace.guest_visible()] == ["end"]
