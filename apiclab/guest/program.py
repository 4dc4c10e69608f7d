"""Guest programs as data: a short list of steps plus a per-vector handler policy.

The same program runs on the model (`apiclab.guest.stepper`) and, encoded by `encode`, on real
implementations through the bare-metal agent, which interprets the binary form from guest memory.
Both report the same guest-visible events (`apiclab.engine.trace.GUEST_VISIBLE`):

- ``interrupt``  {"vector", "isr": [vectors], "irr": [vectors], "tmr": [vectors], "ppr"} on
                 handler entry (LOG flag)
- ``read``       {"reg": offset, "value"} for a local-APIC register (READ),
                 {"port": port, "value": byte} for a port (IN),
                 {"addr": physical address, "value": dword} for memory-mapped I/O (MMIO_READ),
                 {"msr": number, "value"} for an MSR (RDMSR)
- ``fault``      {"vector": 13} when an RDMSR/WRMSR step raises #GP; the program goes on
- ``wait``       {"vector", "count", "outcome": "done" | "timeout"}
- ``bugcheck``   {"code", "params": [p0, p1, p2, p3]}
- ``end``        {}

Binary form (little-endian), version 1:
  header 16 bytes: magic b"APRG", u16 version, u8 mode, u8 default handler flags, u32 step count,
                   u32 reserved
  handler flags: 256 bytes, one per vector (bit 0 EOI, bit 1 LOG, bit 7 set = use this entry)
  steps: 16 bytes each: u32 op, u32 a, u64 b
The port and MMIO ops (10-13), and the MSR and STI_HLT ops (14-16), were added without changing this layout, so the version stays 1; an
agent older than them stops at the first one as at END.

Port I/O works in both modes; MMIO only in 32-bit protected mode (its flat data segment reaches
the IOAPIC at 0xFEC00000, 82093AA §3.0; real mode reaches only the first MiB). Ports the agent
itself uses (its log 0xE9, the exit ports 0x501 and 0x8900) are refused for OUT.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from apiclab.arch.registers import REG_BY_NAME, Reg
from apiclab.errors import ApiclabError, DecodeError

MAGIC = b"APRG"
VERSION = 1
HEADER = struct.Struct("<4sHBBII")
STEP = struct.Struct("<IIQ")
MAX_STEPS = 256
MAX_CPUS = 8


class ProgramError(ApiclabError, ValueError):
    """A guest program that cannot be encoded or run (bad step, register, vector)."""


class ProgramImageError(ProgramError, DecodeError):
    """Bytes that are not a program image `encode` could have written (`decode`)."""


class Mode(StrEnum):
    """How the guest reaches its local APIC."""

    X2APIC_REAL = "x2apic-real"  # real mode, x2APIC through RDMSR/WRMSR (SDM §10.12)
    XAPIC_PM32 = "xapic-pm32"  # 32-bit protected mode, xAPIC MMIO at 0xFEE00000 (SDM §10.4.1)


MODE_CODE = {Mode.X2APIC_REAL: 0, Mode.XAPIC_PM32: 1}


class Op(IntEnum):
    END = 0
    WRITE = 1  # a = register offset, b = value (ICR: 64-bit, high dword = destination)
    READ = 2  # a = register offset → "read" event
    STI = 3
    CLI = 4
    HLT = 5  # halt until an interrupt is delivered
    WAIT = 6  # a = vector | target << 8, b = TSC ticks: spin until count[vector] >= target
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


OP_CODES = frozenset(int(op) for op in Op)
PORT_OPS = frozenset({Op.OUT, Op.IN})
MSR_OPS = frozenset({Op.RDMSR, Op.WRMSR})
# The MSRs a program may touch: the APIC's own (SDM §10.4.4, §10.5.4.1, §10.12.1.2). Others could
# change the agent's machine under it (EFER, PAT) and are refused.
IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR = 0x1B, 0x6E0


def apic_msr(msr: int) -> bool:
    return msr in (IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR) or 0x800 <= msr <= 0x8FF
MMIO_OPS = frozenset({Op.MMIO_WRITE, Op.MMIO_READ})
# The agent's own ports (agent.S): its log, QEMU isa-debug-exit and Bochs' shutdown port. An OUT
# there would forge a log record or end the run.
AGENT_PORTS = frozenset({0xE9, 0x501, 0x502, 0x8900})
# QEMU's pc-testdev (hw/misc/pc-testdev.c), as kvm-unit-tests x86/ioapic.c uses it: a byte written
# to port TESTDEV_IRQ + n drives ISA interrupt line n (0-15) to that level (non-zero = asserted).
TESTDEV_IRQ = 0x2000
TESTDEV_LINES = 16


def testdev_line(port: int) -> int | None:
    """The ISA line a pc-testdev port drives, or None for any other port."""
    line = port - TESTDEV_IRQ
    return line if 0 <= line < TESTDEV_LINES else None


HANDLER_EOI = 0x01
HANDLER_LOG = 0x02
HANDLER_SET = 0x80


@dataclass(frozen=True, slots=True)
class Handler:
    """What the guest's handler for a vector does: it always counts; it may EOI and may log."""

    eoi: bool = True
    log: bool = True

    @property
    def flags(self) -> int:
        return (HANDLER_EOI if self.eoi else 0) | (HANDLER_LOG if self.log else 0)

    @classmethod
    def from_flags(cls, flags: int) -> Handler:
        return cls(eoi=bool(flags & HANDLER_EOI), log=bool(flags & HANDLER_LOG))


@dataclass(frozen=True, slots=True)
class Step:
    op: Op
    a: int = 0
    b: int = 0
    cpu: int = 0  # the CPU that executes it, in a program with several (`Program.cpus`)

    def describe(self) -> str:
        from apiclab.arch.registers import reg_name

        match self.op:
            case Op.WRITE:
                return f"write {reg_name(self.a)} = {self.b:#x}"
            case Op.READ:
                return f"read {reg_name(self.a)}"
            case Op.WAIT:
                return f"wait for {self.a >> 8} x vector {self.a & 0xFF:#x}, {self.b} TSC ticks"
            case Op.TSC_DEADLINE:
                return f"TSC deadline in {self.b} ticks"
            case Op.BUGCHECK_IF_TIMEOUT:
                return f"bugcheck {self.a:#x} if the wait timed out"
            case Op.PAUSE:
                return f"pause {self.b} TSC ticks"
            case Op.OUT:
                return f"out port {self.a:#x} = {self.b:#x}"
            case Op.IN:
                return f"in port {self.a:#x}"
            case Op.MMIO_WRITE:
                return f"mmio write {self.a:#x} = {self.b:#x}"
            case Op.MMIO_READ:
                return f"mmio read {self.a:#x}"
            case Op.RDMSR:
                return f"rdmsr {self.a:#x}"
            case Op.WRMSR:
                return f"wrmsr {self.a:#x} = {self.b:#x}"
            case _:
                return self.op.name.lower()


@dataclass(frozen=True)
class Program:
    """A guest program: steps run in order; `handlers` say what each vector's handler does."""

    steps: tuple[Step, ...]
    handlers: Mapping[int, Handler] = field(default_factory=dict)
    default_handler: Handler = Handler(eoi=False, log=True)
    mode: Mode = Mode.X2APIC_REAL
    # CPUs sharing the APIC bus; CPU k has APIC ID k. With more than one, each step names its CPU
    # and the steps still run one after another, in the order written (the model's interleaving).
    cpus: int = 1

    def handler(self, vector: int) -> Handler:
        return self.handlers.get(vector, self.default_handler)

    def _validate_port(self, i: int, step: Step) -> None:
        if not 0 <= step.a <= 0xFFFF:
            raise ProgramError(f"step {i}: port {step.a:#x} is not 0-0xffff")
        if step.op == Op.OUT and step.a in AGENT_PORTS:
            raise ProgramError(f"step {i}: port {step.a:#x} is the agent's own (log or exit)")
        if step.op == Op.OUT and TESTDEV_IRQ + TESTDEV_LINES <= step.a < TESTDEV_IRQ + 24:
            raise ProgramError(f"step {i}: pc-testdev drives ISA lines 0-15 only "
                               f"(port {step.a:#x})")
        if step.op == Op.OUT and step.b > 0xFF:
            raise ProgramError(f"step {i}: OUT value {step.b:#x} does not fit a byte")

    def _validate_mmio(self, i: int, step: Step) -> None:
        if self.mode != Mode.XAPIC_PM32:
            raise ProgramError(f"step {i}: MMIO needs mode {Mode.XAPIC_PM32.value!r} "
                               "(real mode reaches only the first MiB)")
        if step.a % 4 or not 0 <= step.a < 1 << 32:
            raise ProgramError(f"step {i}: MMIO address {step.a:#x} is not a dword-aligned "
                               "32-bit address")
        if step.op == Op.MMIO_WRITE and step.b >= 1 << 32:
            raise ProgramError(f"step {i}: MMIO value {step.b:#x} does not fit 32 bits")

    def validate(self) -> None:
        if not 1 <= self.cpus <= MAX_CPUS:
            raise ProgramError(f"cpus = {self.cpus}: expected 1..{MAX_CPUS}")
        for i, step in enumerate(self.steps):
            if not 0 <= step.cpu < self.cpus:
                raise ProgramError(f"step {i}: cpu {step.cpu} is not one of the program's "
                                   f"{self.cpus} CPUs (0..{self.cpus - 1})")
        """Every step fits the binary form (u32 a, u64 b) and means something on every backend,
        so `encode` cannot fail and no backend meets a value it cannot represent."""
        counted = len(self.steps) - (1 if self.steps and self.steps[-1].op == Op.END else 0)
        if counted > MAX_STEPS:
            raise ProgramError(f"program has {counted} steps, at most {MAX_STEPS} allowed")
        for i, step in enumerate(self.steps):
            if not isinstance(step.op, Op):
                raise ProgramError(f"step {i}: {step.op!r} is not an op")
            for name, value, bits in (("a", step.a, 32), ("b", step.b, 64)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ProgramError(f"step {i}: operand {name} {value!r} is not an integer")
                if not 0 <= value < 1 << bits:
                    raise ProgramError(f"step {i}: operand {name} {value:#x} does not fit "
                                       f"{bits} bits")
            if step.op in (Op.WRITE, Op.READ) and (step.a % 0x10 or not 0 <= step.a < 0x400):
                raise ProgramError(f"step {i}: register offset {step.a:#x} is not an APIC register")
            if step.op == Op.WRITE and step.a == Reg.SELF_IPI and self.mode != Mode.X2APIC_REAL:
                raise ProgramError(f"step {i}: the self-IPI register exists only in x2APIC mode")
            if step.op == Op.WAIT and not 0 <= step.a < 1 << 24:
                raise ProgramError(f"step {i}: WAIT operand {step.a:#x} out of range")
            if step.op in PORT_OPS:
                self._validate_port(i, step)
            if step.op in MMIO_OPS:
                self._validate_mmio(i, step)
            if step.op in MSR_OPS and not apic_msr(step.a):
                raise ProgramError(f"step {i}: MSR {step.a:#x} is not an APIC MSR "
                                   "(0x1b, 0x6e0, 0x800-0x8ff)")
        for vector in self.handlers:
            if isinstance(vector, bool) or not isinstance(vector, int) or not 0 <= vector <= 255:
                raise ProgramError(f"handler vector {vector!r} is not 0-255")


def encode(program: Program) -> bytes:
    """The binary form the bare-metal agent reads (layout in the module docstring)."""
    program.validate()
    if program.cpus != 1:
        # The agent ROM starts no application processors: the binary form has one CPU.
        raise ProgramError(f"a program for {program.cpus} CPUs has no binary form (one CPU only)")
    steps = list(program.steps)
    if not steps or steps[-1].op != Op.END:
        steps.append(Step(Op.END))
    out = bytearray(
        HEADER.pack(MAGIC, VERSION, MODE_CODE[program.mode], program.default_handler.flags,
                    len(steps), 0)
    )
    table = bytearray(256)
    for vector, handler in program.handlers.items():
        table[vector] = HANDLER_SET | handler.flags
    out += table
    for step in steps:
        out += STEP.pack(int(step.op), step.a, step.b)
    return bytes(out)


def decode(blob: bytes) -> Program:
    """Inverse of `encode` (trailing END kept as a step). Bytes `encode` could not have written
    raise ProgramImageError naming the first field that is wrong."""
    if len(blob) < HEADER.size + 256:
        raise ProgramImageError(f"program image of {len(blob)} bytes is shorter than its "
                                f"{HEADER.size + 256}-byte header")
    magic, version, mode, default_flags, count, reserved = HEADER.unpack_from(blob, 0)
    if magic != MAGIC or version != VERSION:
        raise ProgramImageError(f"not an apiclab program image (magic {magic!r}, "
                                f"version {version})")
    mode_by_code = {v: k for k, v in MODE_CODE.items()}
    if mode not in mode_by_code:
        raise ProgramImageError(f"program image: unknown mode code {mode}")
    if reserved:
        raise ProgramImageError(f"program image: reserved header field is {reserved:#x}, not 0")
    known_flags = HANDLER_SET | HANDLER_EOI | HANDLER_LOG
    table = blob[HEADER.size:HEADER.size + 256]
    for what, flags in (("default handler", default_flags), *(
            (f"handler {v:#x}", f) for v, f in enumerate(table))):
        if flags & ~known_flags:
            raise ProgramImageError(f"program image: {what} flags {flags:#x} have unknown bits")
    handlers = {v: Handler.from_flags(f) for v, f in enumerate(table) if f & HANDLER_SET}
    if count > MAX_STEPS + 1:  # + 1: the END that encode appends
        raise ProgramImageError(f"program image: {count} steps, at most {MAX_STEPS + 1}")
    base = HEADER.size + 256
    if len(blob) < base + count * STEP.size:
        raise ProgramImageError(f"program image is truncated: {count} steps need "
                                f"{base + count * STEP.size} bytes, got {len(blob)}")
    steps = []
    for i in range(count):
        op, a, b = STEP.unpack_from(blob, base + i * STEP.size)
        if op not in OP_CODES:
            raise ProgramImageError(f"program image: step {i} has unknown op {op}")
        steps.append(Step(Op(op), a, b))
    program = Program(tuple(steps), handlers, Handler.from_flags(default_flags), mode_by_code[mode])
    try:
        program.validate()
    except ProgramError as e:
        raise ProgramImageError(f"program image: {e}") from None
    return program


# --- building programs from plain data (TOML cases, scenario files) -----------------------------

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


def _reg(value: Any, where: str) -> int:
    if isinstance(value, str) and value.lower() in REG_BY_NAME:
        return REG_BY_NAME[value.lower()]
    return parse_int(value, where)


def _bounded(row: Mapping[str, Any], key: str, where: str, high: int, default: Any = None) -> int:
    """Field `key` of a step as an integer in 0..high; the message names the field and range."""
    value = parse_int(row.get(key, default), f"{where}.{key}")
    if not 0 <= value <= high:
        raise ProgramError(f"{where}.{key}: {value:#x} is not 0..{high:#x}")
    return value


U32, U64 = (1 << 32) - 1, (1 << 64) - 1
# The keys each op's table may have (besides "op"); any other key is a mistake to name, not to
# ignore: a misspelt "tick" would silently pause for 0 ticks.
STEP_KEYS: dict[Op, frozenset[str]] = {
    Op.WRITE: frozenset({"reg", "value"}),
    Op.READ: frozenset({"reg"}),
    Op.WAIT: frozenset({"vector", "count", "ticks"}),
    Op.TSC_DEADLINE: frozenset({"ticks"}),
    Op.PAUSE: frozenset({"ticks"}),
    Op.BUGCHECK_IF_TIMEOUT: frozenset({"code", "params"}),
    Op.OUT: frozenset({"port", "value"}),
    Op.IN: frozenset({"port"}),
    Op.MMIO_WRITE: frozenset({"addr", "value"}),
    Op.MMIO_READ: frozenset({"addr"}),
    Op.RDMSR: frozenset({"msr"}),
    Op.WRMSR: frozenset({"msr", "value"}),
}


def step_from_dict(row: Any, where: str) -> Step:
    """One step from a table such as {op = "write", reg = "tpr", value = 0x20}; every field is
    range-checked here, where its name is known, so a bad value is named by its field."""
    if not isinstance(row, Mapping):
        raise ProgramError(f"{where}: expected a table such as {{ op = \"sti\" }}, got {row!r}")
    name = row.get("op")
    if not isinstance(name, str) or name.upper() not in Op.__members__:
        names = ", ".join(o.name.lower() for o in Op)
        raise ProgramError(f"{where}: unknown op {name!r}; expected one of {names}")
    op = Op[name.upper()]
    allowed = STEP_KEYS.get(op, frozenset())
    for key in row:
        if key not in ("op", "cpu") and key not in allowed:
            fields = ", ".join(sorted(allowed)) or "none"
            raise ProgramError(f"{where}.{key}: unknown field of a {op.name.lower()} step "
                               f"(its fields: {fields})")
    step = _step_of(op, row, where)
    if "cpu" in row:
        step = Step(step.op, step.a, step.b, _bounded(row, "cpu", where, MAX_CPUS - 1))
    return step


def _step_of(op: Op, row: Mapping[str, Any], where: str) -> Step:
    match op:
        case Op.WRITE:
            return Step(op, _reg(row.get("reg"), f"{where}.reg"), _bounded(row, "value", where, U64))
        case Op.READ:
            return Step(op, _reg(row.get("reg"), f"{where}.reg"))
        case Op.WAIT:
            vector = _bounded(row, "vector", where, 0xFF)
            count = _bounded(row, "count", where, 0xFFFF, 1)
            return Step(op, vector | count << 8, _bounded(row, "ticks", where, U64))
        case Op.TSC_DEADLINE | Op.PAUSE:
            return Step(op, 0, _bounded(row, "ticks", where, U64))
        case Op.OUT:
            return Step(op, _bounded(row, "port", where, 0xFFFF), _bounded(row, "value", where, 0xFF))
        case Op.IN:
            return Step(op, _bounded(row, "port", where, 0xFFFF))
        case Op.MMIO_WRITE:
            return Step(op, _bounded(row, "addr", where, U32), _bounded(row, "value", where, U32))
        case Op.MMIO_READ:
            return Step(op, _bounded(row, "addr", where, U32))
        case Op.RDMSR:
            return Step(op, _bounded(row, "msr", where, U32))
        case Op.WRMSR:
            return Step(op, _bounded(row, "msr", where, U32), _bounded(row, "value", where, U64))
        case Op.BUGCHECK_IF_TIMEOUT:
            raw = row.get("params", [0, 0])
            if not isinstance(raw, list) or len(raw) > 2:
                raise ProgramError(f"{where}.params: expected a list of at most 2 integers "
                                   f"(the bugcheck's first two parameters), got {raw!r}")
            params = [_bounded({"params": p}, "params", where, U32) for p in raw] + [0, 0]
            return Step(op, _bounded(row, "code", where, U32), params[0] | params[1] << 32)
        case _:
            return Step(op)


def _handler(value: Any, where: str, default_eoi: bool) -> Handler:
    if not isinstance(value, Mapping):
        raise ProgramError(f"{where}: expected a table {{ eoi = true|false, log = true|false }}, "
                           f"got {value!r}")
    for key, flag in value.items():
        if key not in ("eoi", "log"):
            raise ProgramError(f"{where}.{key}: unknown field (a handler has eoi and log)")
        if not isinstance(flag, bool):
            raise ProgramError(f"{where}.{key}: expected true or false, got {flag!r}")
    return Handler(eoi=value.get("eoi", default_eoi), log=value.get("log", True))


PROGRAM_KEYS = frozenset({"mode", "steps", "handlers", "default_handler", "cpus"})


def program_from_dict(doc: Mapping[str, Any], where: str = "program") -> Program:
    """A program from {mode, steps = [...], handlers = {"0xd1" = {eoi, log}}, default_handler}."""
    for key in doc:
        if key not in PROGRAM_KEYS:
            raise ProgramError(f"{where}.{key}: unknown field; a program has "
                               f"{', '.join(sorted(PROGRAM_KEYS))}")
    mode_name = doc.get("mode", Mode.X2APIC_REAL.value)
    if not isinstance(mode_name, str) or mode_name not in {m.value for m in Mode}:
        raise ProgramError(
            f"{where}.mode: {mode_name!r} is not one of {', '.join(m.value for m in Mode)}"
        )
    mode = Mode(mode_name)
    rows = doc.get("steps")
    if not isinstance(rows, list):
        raise ProgramError(f"{where}.steps: expected a list of steps")
    if len(rows) > MAX_STEPS:
        raise ProgramError(f"{where}.steps: {len(rows)} steps, at most {MAX_STEPS} allowed")
    steps = tuple(step_from_dict(r, f"{where}.steps[{i}]") for i, r in enumerate(rows))
    table = doc.get("handlers", {})
    if not isinstance(table, Mapping):
        raise ProgramError(f"{where}.handlers: expected a table of vector = {{ eoi, log }}")
    handlers: dict[int, Handler] = {}
    for key, value in table.items():
        at = f"{where}.handlers.{key}"
        vector = parse_int(key, at)
        if not 0 <= vector <= 0xFF:
            raise ProgramError(f"{at}: vector {vector:#x} is not 0..0xff")
        handlers[vector] = _handler(value, at, default_eoi=True)
    default = _handler(doc.get("default_handler", {}), f"{where}.default_handler",
                       default_eoi=False)
    cpus = _bounded(doc, "cpus", where, MAX_CPUS, 1)
    program = Program(steps, handlers, default, mode, cpus)
    try:
        program.validate()
    except ProgramError as e:
        raise ProgramError(f"{where}: {e}") from None
    return program
