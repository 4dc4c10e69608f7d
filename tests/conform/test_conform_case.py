"""The case loader: the built-in suite loads, and each kind of bad file gives one `file:field` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiclab.conform.case import (
    CaseError,
    Exact,
    Masked,
    Range,
    load_builtin,
    load_case,
    load_dir,
)

GOOD = '''
name = "t"
sdm = "10.8.3.1"
description = "d"
[program]
mode = "xapic-pm32"
steps = [{ op = "read", reg = "ppr" }]
[[expect]]
kind = "read"
reg = "ppr"
value = { mask = 0xf0, value = 0x10 }
'''


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_suite_has_at_least_40_cases_each_citing_a_chapter_10_section() -> None:
    cases = load_builtin()
    assert len(cases) >= 40
    assert len({c.name for c in cases}) == len(cases)
    assert all(c.sdm.startswith("10.") for c in cases)


def test_builtin_suite_covers_both_modes_and_every_topic_of_the_issue() -> None:
    names = " ".join(c.name for c in load_builtin())
    for topic in ("dispatch", "ppr", "tpr", "eoi", "self-ipi", "merged", "illegal", "esr", "svr",
                  "spurious", "lvt", "one-shot", "periodic", "tsc-deadline", "divide",
                  "initial-count-zero", "current-count", "reset", "seed", "x2apic",
                  "apic-base", "rdmsr", "wrmsr", "tsc-deadline-msr", "sti-hlt", "nmi-ipi",
                  "ioapic-line", "ioapic-version", "mode-change"):
        assert topic in names, topic


def test_field_matchers_exact_range_mask_and_register_names(tmp_path: Path) -> None:
    case = load_case(write(tmp_path, GOOD))
    want = case.expect[0]
    assert want.fields["reg"] == Exact(0xA0)
    assert want.fields["value"] == Masked(0xF0, 0x10)
    assert want.matches({"kind": "read", "reg": 0xA0, "value": 0x1F})
    assert not want.matches({"kind": "read", "reg": 0xA0, "value": 0x2F})
    assert not want.matches({"kind": "interrupt", "reg": 0xA0, "value": 0x1F})
    assert Range(1, 5).matches(5) and not Range(1, 5).matches(0)
    assert Exact([0x40, 0x60]).matches([0x60, 0x40])  # vector lists compare as sets


def test_end_event_is_implied_unless_the_case_ends_in_a_bugcheck(tmp_path: Path) -> None:
    case = load_case(write(tmp_path, GOOD))
    assert [e.kind for e in case.expected_events()] == ["read", "end"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD.replace('sdm = "10.8.3.1"\n', ""), ":sdm: missing"),
        (GOOD.replace('op = "read"', 'op = "jump"'), ":program.steps[0]: unknown op 'jump'"),
        (GOOD.replace('reg = "ppr" }', 'reg = "nosuch" }'), ":program.steps[0].reg: expected"),
        (GOOD.replace('kind = "read"', 'kind = "sneeze"'), ":expect[0].kind: 'sneeze' is not"),
        (GOOD.replace("{ mask = 0xf0, value = 0x10 }", "{ low = 1 }"), ":expect[0].value: a table"),
        (GOOD.replace("{ mask = 0xf0, value = 0x10 }", "{ min = 5, max = 1 }"),
         ":expect[0].value: min 0x5 is above max 0x1"),
        (GOOD.replace('mode = "xapic-pm32"', 'mode = "long"'), ":program.mode: 'long' is not"),
        ("colour = 1\n" + GOOD, ":colour: unknown field"),
        (GOOD + "colour = 1\n", ":expect[0].colour: a read event has no such field"),
        ("name = \n", ":"),
    ],
)
def test_a_bad_case_file_is_one_line_naming_file_and_field(tmp_path: Path, text: str,
                                                           where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CaseError) as info:
        load_case(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert where in message
    assert "\n" not in message


def test_duplicate_names_in_a_directory_are_refused(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(CaseError, match=r"b\.toml:name: 't' is already used by"):
        load_dir(tmp_path)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match=r"no \*\.toml case files"):
        load_dir(tmp_path)


def test_any_of_matcher_accepts_each_listed_value_and_nothing_else(tmp_path: Path) -> None:
    text = GOOD.replace("value = { mask = 0xf0, value = 0x10 }",
                        "value = { any = [0x11, { mask = 0xff, value = 0x20 }, "
                        "{ min = 0x30, max = 0x31 }] }")
    want = load_case(write(tmp_path, text)).expect[0]
    for value in (0x11, 0x120, 0x31):
        assert want.matches({"kind": "read", "reg": 0xA0, "value": value}), hex(value)
    for value in (0x12, 0x121, 0x32):
        assert not want.matches({"kind": "read", "reg": 0xA0, "value": value}), hex(value)
    assert want.as_dict()["value"] == {"any": [0x11, {"mask": 0xFF, "value": 0x20},
                                               {"min": 0x30, "max": 0x31}]}


@pytest.mark.parametrize("value, message", [
    ("{ any = [] }", "non-empty list"),
    ("{ any = [{ any = [1] }] }", "cannot hold another"),
])
def test_a_bad_any_of_is_refused(tmp_path: Path, value: str, message: str) -> None:
    text = GOOD.replace("{ mask = 0xf0, value = 0x10 }", value)
    with pytest.raises(CaseError, match=message):
        load_case(write(tmp_path, text))


def test_absent_vectors_are_loaded_and_checked(tmp_path: Path) -> None:
    case = load_case(write(tmp_path, "absent = [0x40, 0x51]\n" + GOOD))
    assert case.absent == frozenset({0x40, 0x51})
    with pytest.raises(CaseError, match="absent: vector 256"):
        load_case(write(tmp_path, "absent = [256]\n" + GOOD))
