"""The one case writer: what it writes, the one reader reads back equal (built-in suite, candidates,
strings with control characters, every step class at its field limits)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from apiclab.conform.candidate import candidate_toml
from apiclab.conform.case import Case, CaseError, case_from_dict, load_builtin, load_case
from apiclab.conform.case_writer import case_dict, case_to_dict, comment_line, dumps
from apiclab.guest.program import (
    STEP_CLASSES,
    End,
    Handler,
    Mode,
    Program,
    Read,
    Sti,
    Wait,
    Write,
    decode,
    encode,
    program_from_dict,
    program_to_dict,
    step_from_dict,
    step_to_dict,
)
from apiclab.guest.steps import step_fields

CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f\"\\'''\"\"\" end"


def _same(a: Case, b: Case) -> bool:
    return dataclasses.replace(a, path="") == dataclasses.replace(b, path="")


def test_every_builtin_case_reads_back_equal_after_writing() -> None:
    cases = load_builtin()
    assert len(cases) >= 141
    for case in cases:
        text = dumps(case_to_dict(case))
        back = case_from_dict(tomllib.loads(text), "written")
        assert _same(back, case), case.name


def test_strings_with_control_characters_round_trip_and_comments_stay_comments(
        tmp_path: Path) -> None:
    program = Program((Write(0xF0, 0x1FF), Read(0x80)), mode=Mode.XAPIC_PM32)
    doc = case_dict("odd-" + CONTROL, "10.8.3.1", "line one\nline two\t" + CONTROL, program,
                    [{"kind": "read", "reg": "tpr", "value": 0}], absent=[0x40])
    path = tmp_path / "odd.toml"
    path.write_text(dumps(doc, ["a comment\nwith a newline\x00 and " + CONTROL]))
    case = load_case(path)
    assert case.name == "odd-" + CONTROL
    assert case.description == ("line one\nline two\t" + CONTROL).strip()
    assert case.program == program and case.absent == frozenset({0x40})
    assert _same(case_from_dict(tomllib.loads(dumps(case_to_dict(case))), "again"), case)
    line = comment_line("x\ny\rz\x7f")
    assert "\n" not in line and "\r" not in line and "\x7f" not in line and line.startswith("# ")


def _at_limit(cls: type, high: bool) -> object:
    kwargs: dict[str, object] = {}
    for f in step_fields(cls):
        limit = f.metadata["high"] if high else 0
        kwargs[f.name] = (limit, limit) if f.name == "params" else limit
    return cls(**kwargs, cpu=7 if high else 0)


@pytest.mark.parametrize("cls", list(STEP_CLASSES.values()), ids=lambda c: c.__name__)
def test_every_step_class_reads_back_from_what_it_writes(cls: type) -> None:
    for high in (False, True):
        step = _at_limit(cls, high)
        assert step_from_dict(step_to_dict(step), "s") == step  # type: ignore[arg-type]


def test_step_tables_name_registers_and_leave_defaults_out() -> None:
    assert step_to_dict(Write(0x80, 0x20)) == {"op": "write", "reg": "tpr", "value": 0x20}
    assert step_to_dict(Wait(0xD1, 1000)) == {"op": "wait", "vector": 0xD1, "ticks": 1000}
    assert step_to_dict(Wait(0xD1, 9, count=3, cpu=2)) == {
        "op": "wait", "vector": 0xD1, "ticks": 9, "count": 3, "cpu": 2}
    assert step_to_dict(Read(0x3D0)) == {"op": "read", "reg": 0x3D0}  # no name: a number


def test_a_program_reads_back_from_its_table_and_keeps_its_binary_form() -> None:
    program = Program((Write(0xF0, 0x1FF, cpu=1), Sti(cpu=1), Wait(0x31, 5, count=2), End()),
                      {0x31: Handler(eoi=True, log=False)}, Handler(eoi=False, log=True),
                      Mode.XAPIC_PM32, cpus=2)
    again = program_from_dict(program_to_dict(program))
    assert again == program and encode(again) == encode(program)
    assert decode(encode(program)) == program


def test_a_candidate_is_a_case_the_reader_loads(tmp_path: Path) -> None:
    program = Program((Write(0xF0, 0x1FF), Read(0xA0)), {0x41: Handler()}, mode=Mode.XAPIC_PM32)
    model = [{"kind": "interrupt", "vector": 0x41, "isr": [0x41], "irr": [], "tmr": [],
              "ppr": 0x40}, {"kind": "read", "reg": 0xA0, "value": 0x40}, {"kind": "end"}]
    real = [{"kind": "read", "reg": 0xA0, "value": 0, "note": "x\ny"}, {"kind": "end"}]
    path = tmp_path / "c.toml"
    path.write_text(candidate_toml("c-1", "kvm", 3, 9, program, model, real))
    case = load_case(path)
    assert case.program == program and case.sdm == "unknown (candidate)"
    assert [e.kind for e in case.expected_events()] == ["interrupt", "read", "end"]
    assert case.expect[1].fields["reg"].matches(0xA0)


def test_the_reader_still_names_file_and_field_on_one_line(tmp_path: Path) -> None:
    doc = case_dict("bad", "10.1", "d", Program((Sti(),)), [])
    doc["program"]["steps"] = [{"op": "wait", "vector": 0x100, "ticks": 1}]
    path = tmp_path / "bad.toml"
    path.write_text(dumps(doc))
    with pytest.raises(CaseError) as caught:
        load_case(path)
    message = str(caught.value)
    assert message == f"{path}:program.steps[0].vector: 0x100 is not 0..0xff"
