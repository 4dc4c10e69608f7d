"""Random guest programs for the differential mode, built from whole "moves".

A move is a short group of steps that means one thing to the APIC (send a self-IPI and let it land,
raise TPR, write EOI, read PPR). Every move is within what all four backends support: xAPIC MMIO in
32-bit protected mode (QEMU 7.2 TCG has no x2APIC), fixed edge self-IPIs with legal vectors, TPR,
EOI and register reads; no timer, whose timing differs between backends by nature. Each IPI and
STI is followed by a short pause so a backend's delivery latency cannot reorder events.

The generator is a pure function of its seed (`random.Random(seed)`), so a run is replayable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from apiclab.arch.registers import Reg
from apiclab.guest.program import Handler, Mode, Op, Program, Step

Move = tuple[Step, ...]

SETTLE_TICKS = 20_000  # TSC ticks after an IPI or STI: delivery has happened on every backend
APIC_ON = Step(Op.WRITE, Reg.SVR, 0x1FF)  # §10.4.3: software-enable, spurious vector 0xFF
ICR_SELF_FIXED = 0x44000  # §10.6.1: shorthand self, level assert, fixed, edge

# Vectors spread over classes 2..0xF, two per class, so class and in-class order both matter.
VECTORS = (0x21, 0x2C, 0x35, 0x3A, 0x41, 0x4F, 0x52, 0x5D, 0x63, 0x6E, 0x74, 0x79,
           0x86, 0x8B, 0x97, 0x9C, 0xA2, 0xAD, 0xB1, 0xBE, 0xC4, 0xC9, 0xD1, 0xDB, 0xE1, 0xEE,
           0xF3, 0xFC)
READ_REGS = (Reg.PPR, Reg.TPR, *(Reg.ISR0 + 0x10 * i for i in range(1, 8)),
             *(Reg.IRR0 + 0x10 * i for i in range(1, 8)))


def _settle() -> Step:
    return Step(Op.PAUSE, 0, SETTLE_TICKS)


def random_move(rng: random.Random, vectors: Sequence[int]) -> Move:
    kind = rng.choices(("ipi", "tpr", "eoi", "read", "sti", "cli"), (6, 2, 3, 3, 1, 1))[0]
    match kind:
        case "ipi":
            return (Step(Op.WRITE, Reg.ICR_LOW, ICR_SELF_FIXED | rng.choice(vectors)), _settle())
        case "tpr":
            tpr = rng.choice((0, 0, rng.choice(vectors) & 0xF0, rng.randrange(256)))
            return (Step(Op.WRITE, Reg.TPR, tpr), _settle())
        case "eoi":
            return (Step(Op.WRITE, Reg.EOI, 0), _settle())
        case "read":
            return (Step(Op.READ, rng.choice(READ_REGS)),)
        case "sti":
            return (Step(Op.STI), _settle())
        case _:
            return (Step(Op.CLI),)


def random_moves(seed: int, index: int) -> tuple[list[Move], dict[int, Handler]]:
    """Program number `index` of the stream of `seed`: its moves and handler policies."""
    rng = random.Random(f"apiclab-conform-{seed}-{index}")
    vectors = rng.sample(VECTORS, rng.randint(2, 5))
    handlers = {v: Handler(eoi=rng.random() < 0.7, log=True) for v in vectors}
    moves: list[Move] = [(Step(Op.STI), _settle())] if rng.random() < 0.8 else []
    moves += [random_move(rng, vectors) for _ in range(rng.randint(3, 14))]
    return moves, handlers


def program_of(moves: Sequence[Move], handlers: dict[int, Handler]) -> Program:
    steps = (APIC_ON, *(s for m in moves for s in m))
    return Program(steps, dict(handlers), Handler(eoi=False, log=True), Mode.XAPIC_PM32)


def random_program(seed: int, index: int) -> tuple[Program, list[Move], dict[int, Handler]]:
    moves, handlers = random_moves(seed, index)
    return program_of(moves, handlers), moves, handlers
