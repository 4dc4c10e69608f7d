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

Steps are typed values, one frozen class per op (`apiclab.guest.steps`: `Write(reg, value)`,
`Wait(vector, ticks, count)`, ...); each step's `encode()` is the only packer of its operands into
the binary form below, and `decode_step` the only unpacker.

Binary form (little-endian), version 1:
  header 16 bytes: magic b"APRG", u16 version, u8 mode, u8 default handler flags, u32 step count,
                   u32 reserved
  handler flags: 256 bytes, one per vector (bit 0 EOI, bit 1 LOG, bits 2-5 NMIS: self-NMIs sent
                 on the handler's first run, bit 7 set = use this entry); NMIS was added
                 without a new version (an older agent refuses nothing, it ignores the bits)
  steps: 16 bytes each: u32 op, u32 a, u64 b
The port and MMIO ops (10-13), the MSR and STI_HLT ops (14-16) and LINT1_PULSE (17) were added
without changing this layout, so the version stays 1; an agent older than them stops at the first
one as at END.

LINT1_PULSE is a handshake with the host over COM1 (port 0x3F8, a 16550 UART the host gives the
machine only for such programs): the agent writes LINT1_MARKER to the transmitter, the host pulses
LINT1 and answers LINT1_ACK, which the agent polls for in the receiver (line status bit 0) for at
most LINT1_WAIT_TICKS with its IF as it is; without the answer it writes an "@L" record (an
`agent-error`) and goes on. The pulse therefore lands while the agent is at the step.

Version 2, a program for several CPUs: the same layout, but the header's reserved u32 holds the CPU
count (2..MAX_CPUS) and bits 16-23 of each step's op word the CPU that runs it. A one-CPU program
stays version 1, byte for byte (the agent's batch driver and its tests rely on that). Every CPU of
the agent reads the whole list, runs its own steps only, and waits for its turn on a step counter
shared in RAM, so the steps run one after another in the order written, as on the model.

Port I/O works in both modes; MMIO only in 32-bit protected mode (its flat data segment reaches
the IOAPIC at 0xFEC00000, 82093AA §3.0; real mode reaches only the first MiB). Ports the agent
itself uses (its log 0xE9, the exit ports 0x501 and 0x8900) are refused for OUT.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from apiclab.arch.registers import Reg
from apiclab.guest.steps import (
    MAX_CPUS,
    OP_CODES,
    STEP,
    STEP_CLASSES,
    STEP_CPU_SHIFT,
    STEP_OP_MASK,
    U32,
    U64,
    BaseStep,
    BugcheckIfTimeout,
    Cli,
    End,
    Hlt,
    In,
    Lint1Pulse,
    MmioRead,
    MmioWrite,
    Op,
    Out,
    Pause,
    ProgramError,
    ProgramImageError,
    Rdmsr,
    Read,
    Step,
    Sti,
    StiHlt,
    TscDeadline,
    Wait,
    Write,
    Wrmsr,
    bounded,
    check_step_fields,
    decode_step,
    parse_int,
    step_from_dict,
    step_to_dict,
)
from apiclab.platform.pc import TESTDEV_IRQ, TESTDEV_LINES, testdev_line

__all__ = [
    # the steps (apiclab.guest.steps) and this module's own
    "AGENT_PORTS",
    "HANDLER_EOI",
    "HANDLER_LOG",
    "HANDLER_NMIS",
    "HANDLER_NMIS_SHIFT",
    "HANDLER_SET",
    "HEADER",
    "IA32_APIC_BASE_MSR",
    "IA32_TSC_DEADLINE_MSR",
    "LINT1_ACK",
    "LINT1_MARKER",
    "LINT1_PORTS",
    "LINT1_WAIT_TICKS",
    "LOG_PORT_AP",
    "MAGIC",
    "MAX_CPUS",
    "MAX_HANDLER_NMIS",
    "MAX_STEPS",
    "MODE_CODE",
    "OP_CODES",
    "PROGRAM_KEYS",
    "SELF_NMI_ICR",
    "STEP",
    "STEP_CLASSES",
    "STEP_CPU_SHIFT",
    "STEP_OP_MASK",
    "TESTDEV_IRQ",
    "TESTDEV_LINES",
    "U32",
    "U64",
    "VERSION",
    "VERSION_SMP",
    "BaseStep",
    "BugcheckIfTimeout",
    "Cli",
    "End",
    "Handler",
    "Hlt",
    "In",
    "Lint1Pulse",
    "MmioRead",
    "MmioWrite",
    "Mode",
    "Op",
    "Out",
    "Pause",
    "Program",
    "ProgramError",
    "ProgramImageError",
    "Rdmsr",
    "Read",
    "Step",
    "Sti",
    "StiHlt",
    "TscDeadline",
    "Wait",
    "Write",
    "Wrmsr",
    "apic_msr",
    "decode",
    "encode",
    "parse_int",
    "program_from_dict",
    "program_to_dict",
    "step_from_dict",
    "step_to_dict",
    "testdev_line",
]

MAGIC = b"APRG"
VERSION = 1
VERSION_SMP = 2  # a program for several CPUs: the header's last field is the CPU count
HEADER = struct.Struct("<4sHBBII")
MAX_STEPS = 256


class Mode(StrEnum):
    """How the guest reaches its local APIC."""

    X2APIC_REAL = "x2apic-real"  # real mode, x2APIC through RDMSR/WRMSR (SDM §10.12)
    XAPIC_PM32 = "xapic-pm32"  # 32-bit protected mode, xAPIC MMIO at 0xFEE00000 (SDM §10.4.1)


MODE_CODE = {Mode.X2APIC_REAL: 0, Mode.XAPIC_PM32: 1}


# The MSRs a program may touch: the APIC's own (SDM §10.4.4, §10.5.4.1, §10.12.1.2). Others could
# change the agent's machine under it (EFER, PAT) and are refused.
IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR = 0x1B, 0x6E0


def apic_msr(msr: int) -> bool:
    return msr in (IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR) or 0x800 <= msr <= 0x8FF


# The agent's own ports (agent.S): its log, QEMU isa-debug-exit and Bochs' shutdown port. An OUT
# there would forge a log record or end the run.
# CPU k > 0 of a program for several CPUs logs to LOG_PORT_AP + k (agent.S PORT_LOG_AP).
LOG_PORT_AP = 0x7E0
# COM1 (0x3F8-0x3FF) carries the LINT1_PULSE handshake (module docstring): a program's OUT there
# would forge the agent's marker.
COM1 = 0x3F8
LINT1_PORTS = frozenset(range(COM1, COM1 + 8))
LINT1_MARKER, LINT1_ACK = b"L", b"K"
LINT1_WAIT_TICKS = 1 << 32  # agent.S LINT1_WAIT: ~1.5 s of a 3 GHz TSC for the host's answer
AGENT_PORTS = frozenset({0xE9, 0x501, 0x502, 0x8900} | {LOG_PORT_AP + k for k in range(1, 8)}
                        | LINT1_PORTS)
HANDLER_EOI = 0x01
HANDLER_LOG = 0x02
HANDLER_NMIS_SHIFT = 2  # bits 2-5: self-NMIs the handler sends on its first run (0-15)
HANDLER_NMIS = 0x0F << HANDLER_NMIS_SHIFT
HANDLER_SET = 0x80
MAX_HANDLER_NMIS = 15
# the IPI a handler's `nmis` sends, to its own APIC ID: delivery mode NMI (100b), level assert,
# physical destination, no shorthand (SDM §10.6.1; Table 10-3 allows NMI with no shorthand, not
# with the self shorthand); the destination field is filled in per CPU and mode
SELF_NMI_ICR = 0x4400


@dataclass(frozen=True, slots=True)
class Handler:
    """What the guest's handler for a vector does: it always counts; it may log, then (its first
    run only) send `nmis` NMIs to its own APIC and, if it logs, read the ICR back as a "read"
    event, which marks that this run is still inside the handler; then it may EOI.

    `nmis` is what kvm-unit-tests x86/apic.c test_pending_nmi does in its NMI handler: NMIs sent
    while an NMI handler runs are blocked until its IRET and one of them is held pending (SDM
    vol. 3A §6.7.1), so the handler runs exactly once more, after the first run's read."""

    eoi: bool = True
    log: bool = True
    nmis: int = 0

    @property
    def flags(self) -> int:
        return ((HANDLER_EOI if self.eoi else 0) | (HANDLER_LOG if self.log else 0)
                | (self.nmis << HANDLER_NMIS_SHIFT & HANDLER_NMIS))

    @classmethod
    def from_flags(cls, flags: int) -> Handler:
        return cls(eoi=bool(flags & HANDLER_EOI), log=bool(flags & HANDLER_LOG),
                   nmis=(flags & HANDLER_NMIS) >> HANDLER_NMIS_SHIFT)


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

    @property
    def pulses_lint1(self) -> bool:
        """Whether the program has the platform pulse LINT1 (a `Lint1Pulse` step)."""
        return any(isinstance(s, Lint1Pulse) for s in self.steps)

    def _validate_port(self, i: int, step: Out | In) -> None:
        if isinstance(step, Out) and step.port in AGENT_PORTS:
            raise ProgramError(f"step {i}: port {step.port:#x} is the agent's own (log, exit "
                               "or LINT1 handshake)")
        if isinstance(step, Out) and TESTDEV_IRQ + TESTDEV_LINES <= step.port < TESTDEV_IRQ + 24:
            raise ProgramError(f"step {i}: pc-testdev drives ISA lines 0-15 only "
                               f"(port {step.port:#x})")

    def _validate_mmio(self, i: int, step: MmioWrite | MmioRead) -> None:
        if self.mode != Mode.XAPIC_PM32:
            raise ProgramError(f"step {i}: MMIO needs mode {Mode.XAPIC_PM32.value!r} "
                               "(real mode reaches only the first MiB)")
        if step.addr % 4:
            raise ProgramError(f"step {i}: MMIO address {step.addr:#x} is not a dword-aligned "
                               "32-bit address")

    def validate(self) -> None:
        """Every step fits the binary form and means something on every backend, so `encode`
        cannot fail and no backend meets a value it cannot represent."""
        if not 1 <= self.cpus <= MAX_CPUS:
            raise ProgramError(f"cpus = {self.cpus}: expected 1..{MAX_CPUS}")
        counted = len(self.steps) - (1 if self.steps and isinstance(self.steps[-1], End) else 0)
        if counted > MAX_STEPS:
            raise ProgramError(f"program has {counted} steps, at most {MAX_STEPS} allowed")
        for i, step in enumerate(self.steps):
            if not isinstance(step, BaseStep):
                raise ProgramError(f"step {i}: {step!r} is not a step")
            wrong = check_step_fields(step)
            if wrong:
                raise ProgramError(f"step {i}: {wrong}")
            if not step.cpu < self.cpus:
                raise ProgramError(f"step {i}: cpu {step.cpu} is not one of the program's "
                                   f"{self.cpus} CPUs (0..{self.cpus - 1})")
            self._validate_step(i, step)
        for vector in self.handlers:
            if isinstance(vector, bool) or not isinstance(vector, int) or not 0 <= vector <= 255:
                raise ProgramError(f"handler vector {vector!r} is not 0-255")
        for what, handler in (("default handler", self.default_handler),
                              *((f"handler {v:#x}", h) for v, h in self.handlers.items())):
            self._validate_handler(what, handler)

    def _validate_handler(self, what: str, handler: Handler) -> None:
        nmis = handler.nmis
        if isinstance(nmis, bool) or not isinstance(nmis, int) \
                or not 0 <= nmis <= MAX_HANDLER_NMIS:
            raise ProgramError(f"{what}: nmis {nmis!r} is not 0..{MAX_HANDLER_NMIS}")
        if nmis and self.mode != Mode.X2APIC_REAL:
            # agent.S: in protected mode a handler returns with POPF + RET, not IRET (this
            # host's KVM cannot emulate IRET there), so NMIs stay blocked after the first one
            # and a second NMI would never be taken: the program would show the agent, not
            # the APIC
            raise ProgramError(f"{what}: nmis needs mode {Mode.X2APIC_REAL.value!r} (the "
                               "agent's protected-mode handlers return without IRET, so NMIs "
                               "stay blocked after the first)")

    def _validate_step(self, i: int, step: Step) -> None:
        match step:
            case Write(reg=reg) | Read(reg=reg) if reg % 0x10 or reg >= 0x400:
                raise ProgramError(f"step {i}: register offset {reg:#x} is not an APIC register")
            case Write(reg=Reg.SELF_IPI) if self.mode != Mode.X2APIC_REAL:
                raise ProgramError(f"step {i}: the self-IPI register exists only in x2APIC mode")
            case Out() | In():
                self._validate_port(i, step)
            case Lint1Pulse() if self.cpus > 1:
                # the platform's NMI source drives LINT1 of every CPU at once (QEMU's inject-nmi
                # does so too); the agent's handshake and the model's order of the CPUs' events
                # are built for one CPU only
                raise ProgramError(f"step {i}: lint1_pulse needs a program for one CPU "
                                   f"(this one has {self.cpus})")
            case MmioWrite() | MmioRead():
                self._validate_mmio(i, step)
            case Rdmsr(msr=msr) | Wrmsr(msr=msr) if not apic_msr(msr):
                raise ProgramError(f"step {i}: MSR {msr:#x} is not an APIC MSR "
                                   "(0x1b, 0x6e0, 0x800-0x8ff)")
            case _:
                pass


def encode(program: Program) -> bytes:
    """The binary form the bare-metal agent reads (layout in the module docstring)."""
    program.validate()
    steps = list(program.steps)
    if not steps or not isinstance(steps[-1], End):
        steps.append(End())
    # one CPU: version 1, byte for byte as before; several: version 2 with the CPU count
    several = program.cpus > 1
    out = bytearray(
        HEADER.pack(MAGIC, VERSION_SMP if several else VERSION, MODE_CODE[program.mode],
                    program.default_handler.flags, len(steps), program.cpus if several else 0)
    )
    table = bytearray(256)
    for vector, handler in program.handlers.items():
        table[vector] = HANDLER_SET | handler.flags
    out += table
    for step in steps:
        out += step.encode()
    return bytes(out)


def decode(blob: bytes) -> Program:
    """Inverse of `encode` (trailing END kept as a step). Bytes `encode` could not have written
    raise ProgramImageError naming the first field that is wrong."""
    if len(blob) < HEADER.size + 256:
        raise ProgramImageError(f"program image of {len(blob)} bytes is shorter than its "
                                f"{HEADER.size + 256}-byte header")
    magic, version, mode, default_flags, count, reserved = HEADER.unpack_from(blob, 0)
    if magic != MAGIC or version not in (VERSION, VERSION_SMP):
        raise ProgramImageError(f"not an apiclab program image (magic {magic!r}, "
                                f"version {version})")
    mode_by_code = {v: k for k, v in MODE_CODE.items()}
    if mode not in mode_by_code:
        raise ProgramImageError(f"program image: unknown mode code {mode}")
    if version == VERSION and reserved:
        raise ProgramImageError(f"program image: reserved header field is {reserved:#x}, not 0")
    if version == VERSION_SMP and not 2 <= reserved <= MAX_CPUS:
        raise ProgramImageError(f"program image: version 2 with {reserved} CPUs, not 2..{MAX_CPUS}")
    cpus = reserved if version == VERSION_SMP else 1
    known_flags = HANDLER_SET | HANDLER_EOI | HANDLER_LOG | HANDLER_NMIS
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
        word, a, b = STEP.unpack_from(blob, base + i * STEP.size)
        if word & STEP_OP_MASK not in OP_CODES or (word & ~STEP_OP_MASK and version == VERSION):
            raise ProgramImageError(f"program image: step {i} has unknown op {word}")
        try:
            steps.append(decode_step(word, a, b))
        except ProgramImageError as e:
            raise ProgramImageError(f"program image: step {i}: {e}") from None
    program = Program(tuple(steps), handlers, Handler.from_flags(default_flags), mode_by_code[mode],
                      cpus)
    try:
        program.validate()
    except ProgramError as e:
        raise ProgramImageError(f"program image: {e}") from None
    return program


# --- building programs from plain data (TOML cases, scenario files) -----------------------------

def _handler(value: Any, where: str, default_eoi: bool) -> Handler:
    if not isinstance(value, Mapping):
        raise ProgramError(f"{where}: expected a table {{ eoi = true|false, log = true|false }}, "
                           f"got {value!r}")
    for key, flag in value.items():
        if key == "nmis":
            bounded(flag, f"{where}.nmis", MAX_HANDLER_NMIS)
            continue
        if key not in ("eoi", "log"):
            raise ProgramError(f"{where}.{key}: unknown field (a handler has eoi, log and nmis)")
        if not isinstance(flag, bool):
            raise ProgramError(f"{where}.{key}: expected true or false, got {flag!r}")
    nmis = bounded(value.get("nmis", 0), f"{where}.nmis", MAX_HANDLER_NMIS)
    return Handler(eoi=value.get("eoi", default_eoi), log=value.get("log", True), nmis=nmis)


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
    cpus = bounded(doc.get("cpus", 1), f"{where}.cpus", MAX_CPUS)
    program = Program(steps, handlers, default, mode, cpus)
    try:
        program.validate()
    except ProgramError as e:
        raise ProgramError(f"{where}: {e}") from None
    return program


def _handler_dict(handler: Handler) -> dict[str, Any]:
    """A handler's plain-data table; `nmis` only when it sends any (older tables stay as they
    were)."""
    row: dict[str, Any] = {"eoi": handler.eoi, "log": handler.log}
    if handler.nmis:
        row["nmis"] = handler.nmis
    return row


def program_to_dict(program: Program) -> dict[str, Any]:
    """The plain-data form `program_from_dict` reads back as `program`, step for step."""
    doc: dict[str, Any] = {"mode": program.mode.value}
    if program.cpus != 1:
        doc["cpus"] = program.cpus
    default = program.default_handler
    doc["default_handler"] = _handler_dict(default)
    if program.handlers:
        doc["handlers"] = {f"{v:#x}": _handler_dict(h) for v, h in sorted(program.handlers.items())}
    doc["steps"] = [step_to_dict(s) for s in program.steps]
    return doc
