"""Typed steps of a guest program: one frozen class per op, each with named fields.

A step is a value such as ``Write(reg=Reg.TPR, value=0x20)`` or ``Wait(vector=0xD1, ticks=10**9)``;
no field is packed into another. The agent's binary form (`apiclab.guest.program` docstring)
packs some of them (a WAIT's vector and count share one word); `encode` here is the only place
that packs a step and `decode_step` the only place that unpacks one, so the bytes stay exactly
those the agent ROM reads.

The plain-data form (a TOML case file's ``steps = [...]``) has one reader, `step_from_dict`, which
checks every field where its name is known (a bad value is named ``steps[3].value``), and one
writer, `step_to_dict`, its inverse: ``step_from_dict(step_to_dict(s)) == s`` for every step.
The fields each op has, their ranges and defaults are read off the classes, not restated.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from apiclab.arch.registers import REG_BY_NAME, reg_name
from apiclab.errors import ApiclabError, DecodeError

STEP = struct.Struct("<IIQ")  # u32 op word (op | cpu << 16), u32 a, u64 b
STEP_OP_MASK = 0xFFFF
STEP_CPU_SHIFT = 16  # version 2: a step's CPU in bits 16-23 of its op word (0 in version 1)
MAX_CPUS = 8
U8, U16, U32, U64 = 0xFF, 0xFFFF, (1 << 32) - 1, (1 << 64) - 1


class ProgramError(ApiclabError, ValueError):
    """A guest program that cannot be encoded or run (bad step, register, vector)."""


class ProgramImageError(ProgramError, DecodeError):
    """Bytes that are not a program image `encode` could have written (`decode`)."""


class Op(IntEnum):
    """The op codes of the agent's binary form (agent.S); the numbers are the ABI."""

    END = 0
    WRITE = 1  # a = register offset, b = value (ICR: 64-bit, high dword = destination)
    READ = 2  # a = register offset → "read" event
    STI = 3
    CLI = 4
    HLT = 5  # halt until an interrupt is delivered
    WAIT = 6  # a = vector | count << 8, b = TSC ticks: spin until count[vector] >= count
    TSC_DEADLINE = 7  # b = TSC ticks from now, written to IA32_TSC_DEADLINE
    BUGCHECK_IF_TIMEOUT = 8  # if the last WAIT timed out: "bugcheck" a = code, b = p0 | p1 << 32
    PAUSE = 9  # b = TSC ticks to spin with the current IF
    OUT = 10  # a = port, b = byte (OUT DX, AL)
    IN = 11  # a = port → "read" event {"port", "value"} (IN AL, DX)
    MMIO_WRITE = 12  # a = physical address (dword-aligned), b = 32-bit value (protected mode)
    MMIO_READ = 13  # a = physical address → "read" event {"addr", "value"} (protected mode)
    RDMSR = 14  # a = MSR → "read" event {"msr", "value"}, or a "fault" event (#GP)
    WRMSR = 15  # a = MSR, b = 64-bit value; a #GP is a "fault" event
    STI_HLT = 16  # STI; HLT back to back: an interrupt pending at STI wakes the HLT
    LINT1_PULSE = 17  # the platform pulses LINT1 (the external NMI pin) now; no operands


def _int(high: int, default: int | None = None, *, reg: bool = False) -> Any:
    """A step field holding an integer in 0..high; `reg`: plain data may name an APIC register."""
    meta = {"high": high, "reg": reg}
    return field(metadata=meta) if default is None else field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class BaseStep:
    """What every step has: the CPU that runs it (`Program.cpus`; 0 with one CPU)."""

    op: ClassVar[Op]
    cpu: int = field(default=0, kw_only=True, metadata={"high": MAX_CPUS - 1, "reg": False})

    def operands(self) -> tuple[int, int]:
        """(a, b) of the binary form; ops without operands have (0, 0)."""
        return 0, 0

    def encode(self) -> bytes:
        """The 16 bytes of this step in the agent's program (the only packer of a step)."""
        return STEP.pack(int(self.op) | self.cpu << STEP_CPU_SHIFT, *self.operands())

    def describe(self) -> str:
        return self.op.name.lower()


@dataclass(frozen=True, slots=True)
class End(BaseStep):
    op: ClassVar[Op] = Op.END


@dataclass(frozen=True, slots=True)
class Write(BaseStep):
    """Write a local-APIC register (ICR: 64-bit, its high dword the destination)."""

    op: ClassVar[Op] = Op.WRITE
    reg: int = _int(U32, reg=True)
    value: int = _int(U64)

    def operands(self) -> tuple[int, int]:
        return self.reg, self.value

    def describe(self) -> str:
        return f"write {reg_name(self.reg)} = {self.value:#x}"


@dataclass(frozen=True, slots=True)
class Read(BaseStep):
    op: ClassVar[Op] = Op.READ
    reg: int = _int(U32, reg=True)

    def operands(self) -> tuple[int, int]:
        return self.reg, 0

    def describe(self) -> str:
        return f"read {reg_name(self.reg)}"


@dataclass(frozen=True, slots=True)
class Sti(BaseStep):
    op: ClassVar[Op] = Op.STI


@dataclass(frozen=True, slots=True)
class Cli(BaseStep):
    op: ClassVar[Op] = Op.CLI


@dataclass(frozen=True, slots=True)
class Hlt(BaseStep):
    op: ClassVar[Op] = Op.HLT


@dataclass(frozen=True, slots=True)
class Wait(BaseStep):
    """Spin until the handler of `vector` has run `count` times, for at most `ticks` TSC ticks."""

    op: ClassVar[Op] = Op.WAIT
    vector: int = _int(U8)
    ticks: int = _int(U64)
    count: int = _int(U16, 1)

    def operands(self) -> tuple[int, int]:
        return self.vector | self.count << 8, self.ticks

    def describe(self) -> str:
        return f"wait for {self.count} x vector {self.vector:#x}, {self.ticks} TSC ticks"


@dataclass(frozen=True, slots=True)
class TscDeadline(BaseStep):
    op: ClassVar[Op] = Op.TSC_DEADLINE
    ticks: int = _int(U64)

    def operands(self) -> tuple[int, int]:
        return 0, self.ticks

    def describe(self) -> str:
        return f"TSC deadline in {self.ticks} ticks"


@dataclass(frozen=True, slots=True)
class BugcheckIfTimeout(BaseStep):
    """If the last WAIT timed out: a "bugcheck" event with `code` and two parameters."""

    op: ClassVar[Op] = Op.BUGCHECK_IF_TIMEOUT
    code: int = _int(U32)
    params: tuple[int, int] = field(default=(0, 0), metadata={"high": U32, "reg": False})

    def operands(self) -> tuple[int, int]:
        return self.code, self.params[0] | self.params[1] << 32

    def describe(self) -> str:
        return f"bugcheck {self.code:#x} if the wait timed out"


@dataclass(frozen=True, slots=True)
class Pause(BaseStep):
    op: ClassVar[Op] = Op.PAUSE
    ticks: int = _int(U64)

    def operands(self) -> tuple[int, int]:
        return 0, self.ticks

    def describe(self) -> str:
        return f"pause {self.ticks} TSC ticks"


@dataclass(frozen=True, slots=True)
class Out(BaseStep):
    op: ClassVar[Op] = Op.OUT
    port: int = _int(U16)
    value: int = _int(U8)

    def operands(self) -> tuple[int, int]:
        return self.port, self.value

    def describe(self) -> str:
        return f"out port {self.port:#x} = {self.value:#x}"


@dataclass(frozen=True, slots=True)
class In(BaseStep):
    op: ClassVar[Op] = Op.IN
    port: int = _int(U16)

    def operands(self) -> tuple[int, int]:
        return self.port, 0

    def describe(self) -> str:
        return f"in port {self.port:#x}"


@dataclass(frozen=True, slots=True)
class MmioWrite(BaseStep):
    op: ClassVar[Op] = Op.MMIO_WRITE
    addr: int = _int(U32)
    value: int = _int(U32)

    def operands(self) -> tuple[int, int]:
        return self.addr, self.value

    def describe(self) -> str:
        return f"mmio write {self.addr:#x} = {self.value:#x}"


@dataclass(frozen=True, slots=True)
class MmioRead(BaseStep):
    op: ClassVar[Op] = Op.MMIO_READ
    addr: int = _int(U32)

    def operands(self) -> tuple[int, int]:
        return self.addr, 0

    def describe(self) -> str:
        return f"mmio read {self.addr:#x}"


@dataclass(frozen=True, slots=True)
class Rdmsr(BaseStep):
    op: ClassVar[Op] = Op.RDMSR
    msr: int = _int(U32)

    def operands(self) -> tuple[int, int]:
        return self.msr, 0

    def describe(self) -> str:
        return f"rdmsr {self.msr:#x}"


@dataclass(frozen=True, slots=True)
class Wrmsr(BaseStep):
    op: ClassVar[Op] = Op.WRMSR
    msr: int = _int(U32)
    value: int = _int(U64)

    def operands(self) -> tuple[int, int]:
        return self.msr, self.value

    def describe(self) -> str:
        return f"wrmsr {self.msr:#x} = {self.value:#x}"


@dataclass(frozen=True, slots=True)
class StiHlt(BaseStep):
    """STI; HLT back to back: an interrupt pending at STI wakes the HLT (SDM vol. 2B STI)."""

    op: ClassVar[Op] = Op.STI_HLT


@dataclass(frozen=True, slots=True)
class Lint1Pulse(BaseStep):
    """The platform pulses the CPU's LINT1 pin (on a PC the external NMI source) while the
    program is at this step; the LVT LINT1 entry decides what the APIC makes of it (SDM §10.5.1).
    On a real backend the agent tells the host it is here and waits until the host says it has
    pulsed (`apiclab.guest.program` LINT1_*), so the pulse lands at this step."""

    op: ClassVar[Op] = Op.LINT1_PULSE

    def describe(self) -> str:
        return "LINT1 pulse from the platform"


Step = (End | Write | Read | Sti | Cli | Hlt | Wait | TscDeadline | BugcheckIfTimeout | Pause
        | Out | In | MmioWrite | MmioRead | Rdmsr | Wrmsr | StiHlt | Lint1Pulse)
STEP_CLASSES: dict[Op, type[Step]] = {
    cls.op: cls for cls in (End, Write, Read, Sti, Cli, Hlt, Wait, TscDeadline, BugcheckIfTimeout,
                            Pause, Out, In, MmioWrite, MmioRead, Rdmsr, Wrmsr, StiHlt, Lint1Pulse)
}
OP_CODES = frozenset(int(op) for op in Op)


def op_name(op: Op) -> str:
    return op.name.lower()


def step_fields(cls: type[Step]) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of a step class other than `cpu`, in declaration order."""
    return tuple(f for f in dataclasses.fields(cls) if f.name != "cpu")


# --- the binary form -------------------------------------------------------------------------

def decode_step(word: int, a: int, b: int) -> Step:
    """The step whose `encode()` is (word, a, b); anything else raises ProgramImageError (its
    message completed by the caller with the step's index)."""
    op, cpu = word & STEP_OP_MASK, word >> STEP_CPU_SHIFT
    if op not in OP_CODES:
        raise ProgramImageError(f"unknown op {word}")
    cls = STEP_CLASSES[Op(op)]
    kwargs: dict[str, Any]
    match Op(op):
        case Op.WRITE | Op.WRMSR:
            kwargs = {step_fields(cls)[0].name: a, "value": b}
        case Op.READ | Op.IN | Op.MMIO_READ | Op.RDMSR:
            kwargs = {step_fields(cls)[0].name: a}
        case Op.OUT | Op.MMIO_WRITE:
            kwargs = {step_fields(cls)[0].name: a, "value": b}
        case Op.WAIT:
            kwargs = {"vector": a & 0xFF, "count": a >> 8, "ticks": b}
        case Op.TSC_DEADLINE | Op.PAUSE:
            kwargs = {"ticks": b}
        case Op.BUGCHECK_IF_TIMEOUT:
            kwargs = {"code": a, "params": (b & U32, b >> 32)}
        case _:
            kwargs = {}
    step = cls(**kwargs, cpu=cpu)
    if STEP.pack(word, a, b) != step.encode():
        raise ProgramImageError(f"{op_name(Op(op))} step with operands a={a:#x} b={b:#x} that "
                                "no program encodes")
    return step


# --- plain data (TOML case files) -------------------------------------------------------------

def parse_int(value: Any, where: str) -> int:
    """An integer field of plain data: an int, or a string in any base Python's `int(s, 0)` reads
    ("0x20", "32"); a bool is refused though Python counts it as an int."""
    if isinstance(value, bool):
        raise ProgramError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise ProgramError(f"{where}: expected an integer, got {value!r}")


def bounded(value: Any, where: str, high: int) -> int:
    """`value` as an integer in 0..high; the message names the field and the range."""
    number = parse_int(value, where)
    if not 0 <= number <= high:
        raise ProgramError(f"{where}: {number:#x} is not 0..{high:#x}")
    return number


def _field_value(f: dataclasses.Field[Any], raw: Any, where: str) -> Any:
    high = f.metadata["high"]
    if f.name == "params":  # BugcheckIfTimeout: at most two u32 parameters, missing ones 0
        if not isinstance(raw, list) or len(raw) > 2:
            raise ProgramError(f"{where}: expected a list of at most 2 integers "
                               f"(the bugcheck's first two parameters), got {raw!r}")
        params = [bounded(p, f"{where}[{i}]", high) for i, p in enumerate(raw)] + [0, 0]
        return (params[0], params[1])
    if f.metadata["reg"] and isinstance(raw, str) and raw.lower() in REG_BY_NAME:
        return REG_BY_NAME[raw.lower()]
    return bounded(raw, where, high)


def step_from_dict(row: Any, where: str) -> Step:
    """One step from a table such as {op = "write", reg = "tpr", value = 0x20}; every field is
    range-checked here, where its name is known, so a bad value is named by its field."""
    if not isinstance(row, Mapping):
        raise ProgramError(f"{where}: expected a table such as {{ op = \"sti\" }}, got {row!r}")
    name = row.get("op")
    if not isinstance(name, str) or name.upper() not in Op.__members__:
        names = ", ".join(op_name(o) for o in Op)
        raise ProgramError(f"{where}: unknown op {name!r}; expected one of {names}")
    cls = STEP_CLASSES[Op[name.upper()]]
    fields = step_fields(cls)
    allowed = {f.name for f in fields}
    for key in row:
        if key not in ("op", "cpu") and key not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise ProgramError(f"{where}.{key}: unknown field of a {name.lower()} step "
                               f"(its fields: {listed})")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in row:
            kwargs[f.name] = _field_value(f, row[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING:
            raise ProgramError(f"{where}.{f.name}: expected an integer, got None")
    if "cpu" in row:
        kwargs["cpu"] = bounded(row["cpu"], f"{where}.cpu", MAX_CPUS - 1)
    return cls(**kwargs)


def step_to_dict(step: Step) -> dict[str, Any]:
    """The plain-data table `step_from_dict` reads back as `step`: registers by name, fields at
    their default left out, `cpu` only when not 0."""
    row: dict[str, Any] = {"op": op_name(step.op)}
    for f in step_fields(type(step)):
        value = getattr(step, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.metadata["reg"] and REG_BY_NAME.get(reg_name(value)) == value:
            row[f.name] = reg_name(value)
        elif isinstance(value, tuple):
            row[f.name] = list(value)
        else:
            row[f.name] = value
    if step.cpu:
        row["cpu"] = step.cpu
    return row


def check_step_fields(step: Step) -> str | None:
    """What is wrong with a step built in code (not read from data): a field that is not an
    integer or does not fit its range; None when every field fits."""
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if isinstance(value, tuple) and len(value) != 2:  # BugcheckIfTimeout.params
            return f"{f.name} {value!r} is not two integers"
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int):
                return f"{f.name} {item!r} is not an integer"
            if not 0 <= item <= f.metadata["high"]:
                return f"{f.name} {item:#x} is not 0..{f.metadata['high']:#x}"
    return None
