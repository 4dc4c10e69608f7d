"""Writing a shrunk disagreement as a candidate case file, in the suite's own TOML format.

The expectation is the model's observation, marked as such: a candidate joins the suite only after
someone has found the SDM section that decides between the model and the backend.
"""

from __future__ import annotations

from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.engine.trace import GUEST_VISIBLE
from apiclab.guest.program import Op, Program, Step

_HEX_FIELDS = frozenset({"vector", "ppr", "value", "code"})


def _step_toml(step: Step) -> str:
    match step.op:
        case Op.WRITE:
            return f'{{ op = "write", reg = "{reg_name(step.a)}", value = {step.b:#x} }}'
        case Op.READ:
            return f'{{ op = "read", reg = "{reg_name(step.a)}" }}'
        case Op.WAIT:
            return (f'{{ op = "wait", vector = {step.a & 0xFF:#x}, count = {step.a >> 8}, '
                    f"ticks = {step.b} }}")
        case Op.TSC_DEADLINE | Op.PAUSE:
            return f'{{ op = "{step.op.name.lower()}", ticks = {step.b} }}'
        case Op.BUGCHECK_IF_TIMEOUT:
            return (f'{{ op = "bugcheck_if_timeout", code = {step.a:#x}, '
                    f"params = [{step.b & 0xFFFFFFFF:#x}, {step.b >> 32:#x}] }}")
        case Op.OUT:
            return f'{{ op = "out", port = {step.a:#x}, value = {step.b:#x} }}'
        case Op.IN:
            return f'{{ op = "in", port = {step.a:#x} }}'
        case Op.MMIO_WRITE:
            return f'{{ op = "mmio_write", addr = {step.a:#x}, value = {step.b:#x} }}'
        case Op.MMIO_READ:
            return f'{{ op = "mmio_read", addr = {step.a:#x} }}'
        case Op.RDMSR:
            return f'{{ op = "rdmsr", msr = {step.a:#x} }}'
        case Op.WRMSR:
            return f'{{ op = "wrmsr", msr = {step.a:#x}, value = {step.b:#x} }}'
        case _:
            return f'{{ op = "{step.op.name.lower()}" }}'


def _value_toml(key: str, value: Any) -> str:
    if key == "reg" and isinstance(value, int):
        return f'"{reg_name(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#x}" if key in _HEX_FIELDS or key == "reg" else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:#x}" if isinstance(v, int) else f'"{v}"' for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _events_comment(title: str, events: list[dict[str, Any]]) -> list[str]:
    lines = [f"# {title}:"]
    for e in events:
        fields = " ".join(f"{k}={_value_toml(k, v)}" for k, v in e.items() if k != "kind")
        lines.append(f"#   {e.get('kind')} {fields}".rstrip())
    return lines


def candidate_toml(name: str, backend: str, seed: int, index: int, program: Program,
                   model_events: list[dict[str, Any]], backend_events: list[dict[str, Any]]) -> str:
    lines = [
        f"# Candidate case from `apiclab conform --random --seed {seed}` (program {index}):",
        f"# the model and {backend} disagree on this shrunk program. The expectation below is the",
        "# model's observation; confirm it against the SDM and set `sdm` before adding it.",
        *_events_comment(f"{backend} observed", backend_events),
        "",
        f'name = "{name}"',
        'sdm = "unknown (candidate)"',
        f'description = "Shrunk disagreement between the model and {backend} (seed {seed}, '
        f'program {index})."',
        "",
        "[program]",
        f'mode = "{program.mode.value}"',
        f"default_handler = {{ eoi = {str(program.default_handler.eoi).lower()}, "
        f"log = {str(program.default_handler.log).lower()} }}",
    ]
    if program.handlers:
        inner = ", ".join(
            f'"{v:#x}" = {{ eoi = {str(h.eoi).lower()}, log = {str(h.log).lower()} }}'
            for v, h in sorted(program.handlers.items())
        )
        lines.append(f"handlers = {{ {inner} }}")
    lines.append("steps = [")
    lines += [f"  {_step_toml(s)}," for s in program.steps if s.op != Op.END]
    lines.append("]")
    for event in model_events:
        if event.get("kind") not in GUEST_VISIBLE or event.get("kind") == "end":
            continue
        lines += ["", "[[expect]]"]
        lines += [f"{k} = {_value_toml(k, v)}" for k, v in event.items()]
    return "\n".join(lines) + "\n"
