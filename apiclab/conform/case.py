"""Conformance cases: one TOML file a case, a guest program and its expected observation (SDM).

A case file holds::

    name = "tpr-masks-pending"
    sdm = "10.8.3.1"                       # section of SDM vol. 3A, 325384-059US, chapter 10
    description = "..."
    [program]                              # apiclab.guest.program.program_from_dict
    mode = "xapic-pm32"
    steps = [{ op = "write", reg = "tpr", value = 0x50 }, ...]
    [[expect]]                             # the guest-visible events, in order
    kind = "read"
    reg = "irr2"
    value = { mask = 0x10020, value = 0x10020 }

Each expected event names its `kind` and only the fields that matter; a field is an exact value
(an integer, a register name for `reg`, a string, or a list of vectors compared as a set), a range
``{ min, max }`` where timing legitimately varies (timer current-count reads), or a bit test
``{ mask, value }``, or any of several such values ``{ any = [0x11, 0x20] }`` (registers whose
value is implementation-specific within what the SDM allows). A top-level ``absent = [vectors]``
says those vectors are never delivered (no ``interrupt`` event names them). The run must end with an ``end`` event unless the last expected event is a
``bugcheck`` or ``fault``; the matcher appends it, so case files do not list it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from apiclab.arch.registers import REG_BY_NAME
from apiclab.engine.events import FIELDS
from apiclab.engine.events import GUEST_VISIBLE_KINDS as GUEST_VISIBLE
from apiclab.errors import UserError
from apiclab.executors.case import Case
from apiclab.executors.expect import (
    AnyOf,
    Exact,
    ExpectedEvent,
    FieldMatcher,
    Masked,
    Range,
)
from apiclab.files import InputFileError, read_text
from apiclab.guest.program import ProgramError, program_from_dict

# The case and its matchers are the executors' (`apiclab.executors.case`, `.expect`): one notion
# of a case for every executor; this module reads them from TOML.
__all__ = ["EVENT_FIELDS", "AnyOf", "Case", "CaseError", "Exact", "ExpectedEvent", "Masked",
           "Range", "builtin_dir", "case_from_dict", "load_builtin", "load_case", "load_dir"]

MAX_CASES = 10_000  # a directory with more is not a suite (the built-in one has 58)
# The fields an expectation may name for each guest-visible event: its class's fields
# (`apiclab.engine.events`, the one schema), `cpu` included (a program for several CPUs).
EVENT_FIELDS: dict[str, frozenset[str]] = {kind: FIELDS[kind] for kind in sorted(GUEST_VISIBLE)}


CASE_KEYS = frozenset({"name", "sdm", "description", "program", "expect", "absent"})


class CaseError(UserError):
    """A case file that cannot be used; the message is `file:field: what is wrong`."""


# What each expected field holds, so a value of the wrong type is refused at load time rather
# than compared with an observation it can never equal (a string "0x80" is not the vector 0x80).
LIST_FIELDS = frozenset({"isr", "irr", "tmr", "params"})
WAIT_OUTCOMES = ("done", "timeout")
U64 = (1 << 64) - 1


def _int(value: Any, where: str) -> int:
    """An integer field: a TOML integer in 0..2^64-1. A string is refused even if it spells a
    number: observations hold integers, and TOML writes hex without quotes (0x80)."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (write numbers without quotes, e.g. 0x80)" if isinstance(value, str) else ""
        raise CaseError(f"{where}: expected an integer, got {value!r}{hint}")
    if not 0 <= value <= U64:
        raise CaseError(f"{where}: {value} is not 0..2^64-1")
    return value


def _matcher(key: str, value: Any, where: str) -> FieldMatcher:
    if key == "reg" and isinstance(value, str):
        if value.lower() not in REG_BY_NAME:
            raise CaseError(f"{where}: unknown register {value!r}")
        return Exact(REG_BY_NAME[value.lower()])
    if key == "outcome":
        if value not in WAIT_OUTCOMES:
            raise CaseError(f"{where}: expected one of {', '.join(map(repr, WAIT_OUTCOMES))}, "
                            f"got {value!r}")
        return Exact(value)
    if key in LIST_FIELDS:
        if not isinstance(value, list):
            raise CaseError(f"{where}: expected a list of integers, got {value!r}")
        return Exact([_int(v, f"{where}[{i}]") for i, v in enumerate(value)])
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"min", "max"}:
            low, high = _int(value["min"], f"{where}.min"), _int(value["max"], f"{where}.max")
            if low > high:
                raise CaseError(f"{where}: min {low:#x} is above max {high:#x}")
            return Range(low, high)
        if keys == {"mask", "value"}:
            mask = _int(value["mask"], f"{where}.mask")
            return Masked(mask, _int(value["value"], f"{where}.value") & mask)
        if keys == {"any"}:
            options = value["any"]
            if not isinstance(options, list) or not options:
                raise CaseError(f"{where}.any: expected a non-empty list of values")
            chosen = []
            for i, option in enumerate(options):
                m = _matcher(key, option, f"{where}.any[{i}]")
                if isinstance(m, AnyOf):
                    raise CaseError(f"{where}.any[{i}]: an 'any' cannot hold another 'any'")
                chosen.append(m)
            return AnyOf(tuple(chosen))
        raise CaseError(f"{where}: a table must be {{min, max}}, {{mask, value}} or {{any}}, "
                        f"got {sorted(keys)}")
    return Exact(_int(value, where))


def expected_event_from_dict(row: Any, where: str) -> ExpectedEvent:
    if not isinstance(row, Mapping):
        raise CaseError(f"{where}: expected a table")
    kind = row.get("kind")
    if not isinstance(kind, str) or kind not in GUEST_VISIBLE:
        raise CaseError(f"{where}.kind: {kind!r} is not one of {', '.join(sorted(GUEST_VISIBLE))}")
    allowed = EVENT_FIELDS.get(kind, frozenset())
    for key in row:
        if key != "kind" and key not in allowed:
            raise CaseError(f"{where}.{key}: a {kind} event has no such field; "
                            f"it has {', '.join(sorted(allowed)) or 'none'}")
    fields = {k: _matcher(k, v, f"{where}.{k}") for k, v in row.items() if k != "kind"}
    return ExpectedEvent(kind, fields)


def case_from_dict(doc: Mapping[str, Any], path: str) -> Case:
    """A case from parsed TOML; every error names `path:field`."""
    unknown = set(doc) - CASE_KEYS
    if unknown:  # first: a misspelt key would otherwise be reported as its correct twin missing
        raise CaseError(f"{path}:{sorted(unknown)[0]}: unknown field; a case has "
                        f"{', '.join(sorted(CASE_KEYS))}")
    for key in ("name", "sdm", "description"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise CaseError(f"{path}:{key}: missing or not a non-empty string")
    program_doc = doc.get("program")
    if not isinstance(program_doc, Mapping):
        raise CaseError(f"{path}:program: missing [program] table")
    try:
        program = program_from_dict(program_doc, "program")
    except ProgramError as e:
        raise CaseError(f"{path}:{e}") from None
    rows = doc.get("expect", [])
    if not isinstance(rows, list):
        raise CaseError(f"{path}:expect: expected an array of tables ([[expect]])")
    try:
        expect = tuple(expected_event_from_dict(r, f"expect[{i}]") for i, r in enumerate(rows))
    except CaseError as e:
        raise CaseError(f"{path}:{e}") from None
    absent_doc = doc.get("absent", [])
    if not isinstance(absent_doc, list):
        raise CaseError(f"{path}:absent: expected a list of vectors")
    absent = frozenset(_int(v, f"{path}:absent[{i}]") for i, v in enumerate(absent_doc))
    for v in absent:
        if not 0 <= v <= 255:
            raise CaseError(f"{path}:absent: vector {v} is not 0-255")
    return Case(doc["name"], doc["sdm"], doc["description"].strip(), program, expect, path,
                absent)


def load_case(path: Path | str) -> Case:
    path = Path(path)
    try:
        doc = tomllib.loads(read_text(path))
    except InputFileError as e:
        raise CaseError(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise CaseError(f"{path}:{e}") from None
    return case_from_dict(doc, str(path))


def load_dir(directory: Path | str) -> list[Case]:
    """Every `*.toml` case of a directory, sorted by file name; names must be unique."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaseError(f"{directory}: not a directory of case files")
    paths = sorted(directory.glob("*.toml"))
    if len(paths) > MAX_CASES:
        raise CaseError(f"{directory}: {len(paths)} case files, at most {MAX_CASES}")
    cases = [load_case(p) for p in paths]
    if not cases:
        raise CaseError(f"{directory}: no *.toml case files")
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            raise CaseError(f"{case.path}:name: {case.name!r} is already used by {seen[case.name]}")
        seen[case.name] = case.path
    return cases


def builtin_dir() -> Path:
    return Path(str(resources.files("apiclab.conform") / "cases"))


def load_builtin() -> list[Case]:
    return load_dir(builtin_dir())
