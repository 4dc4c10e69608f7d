"""Writing a shrunk disagreement as a candidate case file, in the suite's own TOML format.

The expectation is the model's observation, marked as such: a candidate joins the suite only after
someone has found the SDM section that decides between the model and the backend. The file is
written by the suite's one case writer (`apiclab.conform.case_writer`), so `load_case` reads it.
"""

from __future__ import annotations

import json
from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.conform.case_writer import case_dict, dumps
from apiclab.engine.trace import GUEST_VISIBLE
from apiclab.guest.program import End, Program

_HEX_FIELDS = frozenset({"vector", "ppr", "value", "code", "msr", "port", "addr"})


def _shown(key: str, value: Any) -> str:
    """A field of an observed event as the comment shows it."""
    if key == "reg" and isinstance(value, int) and not isinstance(value, bool):
        return reg_name(value)
    if isinstance(value, bool) or not isinstance(value, int | list):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_shown(key, v) for v in value) + "]"
    return f"{value:#x}" if key in _HEX_FIELDS or key in ("isr", "irr", "tmr") else str(value)


def _events_comment(title: str, events: list[dict[str, Any]]) -> list[str]:
    lines = [f"{title}:"]
    for e in events:
        fields = " ".join(f"{k}={_shown(k, v)}" for k, v in e.items() if k != "kind")
        lines.append(f"  {e.get('kind')} {fields}".rstrip())
    return lines


def _expected(event: dict[str, Any]) -> dict[str, Any]:
    return {k: (reg_name(v) if k == "reg" and isinstance(v, int) else v)
            for k, v in event.items()}


def candidate_toml(name: str, backend: str, seed: int, index: int, program: Program,
                   model_events: list[dict[str, Any]], backend_events: list[dict[str, Any]]) -> str:
    steps = program.steps
    if steps and isinstance(steps[-1], End):  # the reader's programs end without one
        program = Program(steps[:-1], program.handlers, program.default_handler, program.mode,
                          program.cpus)
    comments = [
        f"Candidate case from `apiclab conform --random --seed {seed}` (program {index}):",
        f"the model and {backend} disagree on this shrunk program. The expectation below is the",
        "model's observation; confirm it against the SDM and set `sdm` before adding it.",
        *_events_comment(f"{backend} observed", backend_events),
    ]
    expect = [_expected(e) for e in model_events
              if e.get("kind") in GUEST_VISIBLE and e.get("kind") != "end"]
    doc = case_dict(name, "unknown (candidate)",
                    f"Shrunk disagreement between the model and {backend} (seed {seed}, "
                    f"program {index}).", program, expect)
    return dumps(doc, comments)
