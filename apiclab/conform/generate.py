"""Random guest programs for the differential mode, built from whole "moves".

A move is a short group of steps that means one thing to the APIC (send a self-IPI and let it land,
raise TPR, write EOI, read PPR, read an APIC MSR, pulse an IOAPIC input). Every move is within what
the backends support: xAPIC MMIO in 32-bit protected mode (QEMU 7.2 TCG has no x2APIC), fixed edge
self-IPIs with legal vectors, TPR, EOI, register reads, RDMSR of IA32_APIC_BASE and
IA32_TSC_DEADLINE (both readable in xAPIC mode), and edge interrupts from IOAPIC input 14 driven
through pc-testdev (only in some programs, since Bochs has no pc-testdev and runs none of those);
no timer, whose timing differs between backends by nature. Each IPI, pulse and STI is followed by
a short pause so a backend's delivery latency cannot reorder events.

The generator is a pure function of its seed (`random.Random(seed)`), so a run is replayable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from apiclab.arch.registers import Reg
from apiclab.guest.program import (
    IA32_APIC_BASE_MSR,
    IA32_TSC_DEADLINE_MSR,
    TESTDEV_IRQ,
    Cli,
    Handler,
    MmioWrite,
    Mode,
    Out,
    Pause,
    Program,
    Rdmsr,
    Read,
    Step,
    Sti,
    Write,
)

Move = tuple[Step, ...]

SETTLE_TICKS = 20_000  # TSC ticks after an IPI or STI: delivery has happened on every backend
APIC_ON = Write(Reg.SVR, 0x1FF)  # §10.4.3: software-enable, spurious vector 0xFF
ICR_SELF_FIXED = 0x44000  # §10.6.1: shorthand self, level assert, fixed, edge

# Vectors spread over classes 2..0xF, two per class, so class and in-class order both matter.
VECTORS = (0x21, 0x2C, 0x35, 0x3A, 0x41, 0x4F, 0x52, 0x5D, 0x63, 0x6E, 0x74, 0x79,
           0x86, 0x8B, 0x97, 0x9C, 0xA2, 0xAD, 0xB1, 0xBE, 0xC4, 0xC9, 0xD1, 0xDB, 0xE1, 0xEE,
           0xF3, 0xFC)
READ_REGS = (Reg.PPR, Reg.TPR, *(Reg.ISR0 + 0x10 * i for i in range(1, 8)),
             *(Reg.IRR0 + 0x10 * i for i in range(1, 8)))


IOAPIC_SEL, IOAPIC_WIN = 0xFEC00000, 0xFEC00010  # 82093AA §3.0
LINE = 14  # an ISA line no backend's devices drive (kvm-unit-tests x86/ioapic.c uses it too)
LINE_SHARE = 0.25  # of programs that pulse IOAPIC input 14


def _settle() -> Step:
    return Pause(SETTLE_TICKS)


def line_pulse(vector: int) -> Move:
    """Route input 14 as a fixed, edge-triggered, unmasked entry to APIC 0 with `vector`, then
    raise and lower it: one edge, one interrupt (82093AA §3.2.4). The 8259s are masked first so
    the line reaches only the IOAPIC; each move programs its own entry, so a shrunk program that
    keeps any one pulse still means the same."""
    index = 0x10 + 2 * LINE
    return (
        Out(0x21, 0xFF), Out(0xA1, 0xFF),
        MmioWrite(IOAPIC_SEL, index + 1), MmioWrite(IOAPIC_WIN, 0),
        MmioWrite(IOAPIC_SEL, index), MmioWrite(IOAPIC_WIN, vector),
        Out(TESTDEV_IRQ + LINE, 1), Out(TESTDEV_IRQ + LINE, 0), _settle(),
    )


def random_move(rng: random.Random, vectors: Sequence[int], *, line: bool = False) -> Move:
    kinds = ("ipi", "tpr", "eoi", "read", "sti", "cli", "msr", "line")
    kind = rng.choices(kinds, (6, 2, 3, 3, 1, 1, 1, 2 if line else 0))[0]
    match kind:
        case "ipi":
            return (Write(Reg.ICR_LOW, ICR_SELF_FIXED | rng.choice(vectors)), _settle())
        case "tpr":
            tpr = rng.choice((0, 0, rng.choice(vectors) & 0xF0, rng.randrange(256)))
            return (Write(Reg.TPR, tpr), _settle())
        case "eoi":
            return (Write(Reg.EOI, 0), _settle())
        case "read":
            return (Read(rng.choice(READ_REGS)),)
        case "sti":
            return (Sti(), _settle())
        case "msr":
            return (Rdmsr(rng.choice((IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR))),)
        case "line":
            return line_pulse(rng.choice(vectors))
        case _:
            return (Cli(),)


def random_moves(seed: int, index: int) -> tuple[list[Move], dict[int, Handler]]:
    """Program number `index` of the stream of `seed`: its moves and handler policies."""
    rng = random.Random(f"apiclab-conform-{seed}-{index}")
    vectors = rng.sample(VECTORS, rng.randint(2, 5))
    handlers = {v: Handler(eoi=rng.random() < 0.7, log=True) for v in vectors}
    moves: list[Move] = [(Sti(), _settle())] if rng.random() < 0.8 else []
    line = rng.random() < LINE_SHARE
    moves += [random_move(rng, vectors, line=line) for _ in range(rng.randint(3, 14))]
    return moves, handlers


def program_of(moves: Sequence[Move], handlers: dict[int, Handler]) -> Program:
    steps = (APIC_ON, *(s for m in moves for s in m))
    return Program(steps, dict(handlers), Handler(eoi=False, log=True), Mode.XAPIC_PM32)


def random_program(seed: int, index: int) -> tuple[Program, list[Move], dict[int, Handler]]:
    moves, handlers = random_moves(seed, index)
    return program_of(moves, handlers), moves, handlers
