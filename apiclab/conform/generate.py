"""Random guest programs for the differential mode, built from whole "moves" over the case
vocabulary.

A move is a short group of steps that means one thing to the APIC and leaves it as it found it
(enabled, in the program's mode), so that any subset of a program's moves — what delta debugging
tries when it shrinks a disagreement — is still a program that means something. The moves cover
what the case files can say:

- self-IPIs (fixed, edge, the self shorthand or, in x2APIC mode, the SELF IPI register), TPR
  writes, EOIs, STI/CLI, reads of PPR, TPR, ISR, IRR and TMR words;
- NMI by IPI (delivery mode 100b, §10.6.1) and `sti; hlt` with an interrupt pending at STI (the
  move first empties ISR with EOIs and lowers TPR, so the pending interrupt is always deliverable
  and the HLT always wakes);
- RDMSR of IA32_APIC_BASE and IA32_TSC_DEADLINE, and accesses that raise #GP: an x2APIC MSR in
  xAPIC mode (§10.12.1.2), reserved bits of IA32_APIC_BASE (§10.4.4), x2APIC registers that are
  read-only, write-only or absent, a non-zero ESR write, TPR bits 63:8 (§10.12.1.2-3);
- IA32_APIC_BASE transitions (§10.12.5 Figure 10-27): disable and re-enable, through x2APIC and
  back, with the illegal ones (#GP) on the way; the move ends with the APIC re-enabled and
  software-enabled (a global disable resets it, §10.4.3);
- the timer: every divide configuration (§10.5.4), read back, and a short one-shot waited for;
- IOAPIC inputs through pc-testdev (edge and level, to any CPU), only in protected mode (the
  IOAPIC is programmed through MMIO) and only in some programs, since Bochs has no pc-testdev;
- LINT1 pulses from the platform (a share of the one-CPU programs, §10.5.1): LVT LINT1 masked, in
  delivery mode NMI (its vector field ignored) or Fixed with one of the program's vectors, then
  masked again; drawn apart from the rest of the program (a stream of its own), so the programs
  without one are those the generator made before it had the step;
- programs for 2-4 CPUs (a share of them): fixed IPIs to another CPU in physical mode, by
  broadcast, in logical flat and cluster mode (xAPIC) or x2APIC cluster mode, by the shorthands
  all and all-but-self, lowest priority to one target, NMI to another CPU, INIT + SIPI to an
  AP (which then sets itself up again), and (xAPIC) two APICs sharing one physical ID: a CPU
  writes another's ID into its ID register (§10.4.6), an IPI to that ID reaches both
  (§10.6.2.1), and the CPU writes its own ID back; every IPI is followed by reads of the vector's
  IRR word on every CPU, so a delivery shows even on a CPU with IF = 0.

Most programs run in xAPIC mode from protected mode (the mode every backend has); a share runs
in x2APIC mode from real mode, which QEMU 7.2's TCG does not run (it says why). Each IPI, pulse
and STI is followed by a pause so a backend's delivery latency cannot reorder events.

The generator is a pure function of (seed, index) (`random.Random`), so a run is replayable.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from apiclab.arch.registers import Reg
from apiclab.guest.program import (
    IA32_APIC_BASE_MSR,
    IA32_TSC_DEADLINE_MSR,
    TESTDEV_IRQ,
    Cli,
    Handler,
    Lint1Pulse,
    MmioRead,
    MmioWrite,
    Mode,
    Out,
    Pause,
    Program,
    Rdmsr,
    Read,
    Step,
    Sti,
    StiHlt,
    Wait,
    Write,
    Wrmsr,
)

Move = tuple[Step, ...]

SETTLE_TICKS = 20_000  # TSC ticks after an IPI or STI: delivery has happened on every backend
SMP_SETTLE_TICKS = 200_000  # after an IPI to another CPU (as the smp-* cases pause)
SVR_ON = 0x1FF  # §10.4.3: software-enable, spurious vector 0xFF
APIC_ON = Write(Reg.SVR, SVR_ON)
ICR_SELF_FIXED = 0x44000  # §10.6.1: shorthand self, level assert, fixed, edge
# ICR fields (§10.6.1 Figure 10-12)
FIXED, LOWEST, NMI, INIT, STARTUP = 0 << 8, 1 << 8, 4 << 8, 5 << 8, 6 << 8
LOGICAL, ASSERT = 1 << 11, 1 << 14
ALL, ALL_BUT_SELF = 2 << 18, 3 << 18

# Vectors spread over classes 2..0xF, two per class, so class and in-class order both matter.
VECTORS = (0x21, 0x2C, 0x35, 0x3A, 0x41, 0x4F, 0x52, 0x5D, 0x63, 0x6E, 0x74, 0x79,
           0x86, 0x8B, 0x97, 0x9C, 0xA2, 0xAD, 0xB1, 0xBE, 0xC4, 0xC9, 0xD1, 0xDB, 0xE1, 0xEE,
           0xF3, 0xFC)
READ_REGS = (Reg.PPR, Reg.TPR, *(Reg.ISR0 + 0x10 * i for i in range(1, 8)),
             *(Reg.IRR0 + 0x10 * i for i in range(1, 8)),
             *(Reg.TMR0 + 0x10 * i for i in range(1, 8)))
DIVIDES = (0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB)  # §10.5.4 Figure 10-10: by 2..128 and 1
TIMER_COUNT = 0x10  # a one-shot short on every backend, even divided by 128
TIMER_WAIT_TICKS = 40_000_000  # 20 ms at 2 GHz: the one-shot has long expired

IOAPIC_SEL, IOAPIC_WIN = 0xFEC00000, 0xFEC00010  # 82093AA §3.0
LINE = 14  # an ISA line no backend's devices drive (kvm-unit-tests x86/ioapic.c uses it too)
LINE_SHARE = 0.25  # of protected-mode programs that drive IOAPIC input 14
SMP_SHARE = 0.3  # of programs for 2-4 CPUs
LINT1_SHARE = 0.2  # of one-CPU programs with a LINT1 pulse
LVT_MASKED = 1 << 16  # §10.5.1 Figure 10-8
X2APIC_SHARE = 0.2  # of programs in x2APIC mode (real mode)

# IA32_APIC_BASE (§10.4.4 Figure 10-5): base, BSP (bit 8), EXTD (bit 10), EN (bit 11)
BASE, BSP_BIT, EXTD, EN = 0xFEE00000, 1 << 8, 1 << 10, 1 << 11
BASE_RESERVED_BITS = (0, 3, 7, 9, 63)
# x2APIC MSR accesses that raise #GP (§10.12.1.2 Table 10-6, §10.12.1.3)
X2APIC_GP = (
    Rdmsr(0x80B),  # EOI is write-only
    Rdmsr(0x831), Rdmsr(0x83F),  # no ICR high; SELF IPI is write-only
    Wrmsr(0x802, 0x5), Wrmsr(0x803, 0), Wrmsr(0x80D, 0x10),  # ID, version, LDR read-only
    Wrmsr(0x828, 0x1),  # ESR: only 0 may be written
    Wrmsr(0x808, 0x100000020),  # TPR bits 63:8 reserved
    Wrmsr(0x80B, 0x1),  # EOI: a non-zero write
)


def _settle(cpu: int = 0, ticks: int = SETTLE_TICKS) -> Step:
    return Pause(ticks, cpu=cpu)


def _base(cpu: int, bits: int) -> int:
    return BASE | (BSP_BIT if cpu == 0 else 0) | bits


def _svr(cpu: int) -> Step:
    """Software-enable `cpu`'s APIC (a register write: MMIO or WRMSR, as the program's mode)."""
    return Write(Reg.SVR, SVR_ON, cpu=cpu)


def line_pulse(vector: int, *, level: bool = False, dest: int = 0) -> Move:
    """Route input 14 as a fixed, unmasked entry to APIC `dest` with `vector`, edge or level
    triggered, then raise and lower it (82093AA §3.2.4); a level entry is read back afterwards
    (its remote IRR, bit 14, says whether the EOI reached the IOAPIC). A level pulse is sent with
    the destination's IF clear and lowered at once: a handler that EOIs while the line is still
    high is sent the interrupt again (§3.2.4), a storm that only the device could end. The 8259s
    are masked first so the line reaches only the IOAPIC; each move programs its own entry, so a
    shrunk program that keeps any one pulse still means the same."""
    index = 0x10 + 2 * LINE
    low = vector | (1 << 15 if level else 0)
    steps: list[Step] = [
        Out(0x21, 0xFF), Out(0xA1, 0xFF),
        MmioWrite(IOAPIC_SEL, index + 1), MmioWrite(IOAPIC_WIN, dest << 24),
        MmioWrite(IOAPIC_SEL, index), MmioWrite(IOAPIC_WIN, low),
    ]
    if level:
        steps += [Cli(cpu=dest), Out(TESTDEV_IRQ + LINE, 1), Out(TESTDEV_IRQ + LINE, 0), _settle()]
    else:
        steps += [Out(TESTDEV_IRQ + LINE, 1), _settle(), Out(TESTDEV_IRQ + LINE, 0), _settle()]
    if level:
        steps += [MmioWrite(IOAPIC_SEL, index), MmioRead(IOAPIC_WIN)]
    return tuple(steps)


def _icr(mode: Mode, low: int, dest: int) -> int:
    """An ICR value: xAPIC has the destination in bits 63:56, x2APIC in bits 63:32 (§10.12.9)."""
    return low | (dest << 32 if mode == Mode.X2APIC_REAL else dest << 56)


def _irr_reads(vector: int, cpus: int) -> list[Step]:
    return [Read(Reg.IRR0 + 0x10 * (vector >> 5), cpu=k) for k in range(cpus)]


def smp_ipi(rng: random.Random, mode: Mode, cpus: int, vector: int) -> Move:
    """A fixed IPI from a random CPU to others, in one of the destination modes, then the
    vector's IRR word read on every CPU (§10.6.2)."""
    sender = rng.randrange(cpus)
    other = rng.choice([k for k in range(cpus) if k != sender])
    kinds = ["physical", "broadcast", "all", "all-but-self", "logical"]
    if mode == Mode.XAPIC_PM32:  # the x2APIC architecture leaves lowest priority to the model
        kinds.append("lowest")
    kind = rng.choice(kinds)
    setup: list[Step] = []
    match kind:
        case "physical":
            icr = _icr(mode, ASSERT | FIXED | vector, other)
        case "broadcast":
            icr = _icr(mode, ASSERT | FIXED | vector, 0xFFFFFFFF if mode == Mode.X2APIC_REAL
                       else 0xFF)
        case "all":
            icr = ALL | ASSERT | FIXED | vector
        case "all-but-self":
            icr = ALL_BUT_SELF | ASSERT | FIXED | vector
        case "lowest":  # one target: arbitration among several is the implementation's (§10.6.2.4)
            icr = _icr(mode, ASSERT | LOWEST | vector, other)
        case _ if mode == Mode.X2APIC_REAL:
            # x2APIC cluster (§10.12.10.2): LDR is derived from the ID, cluster = ID >> 4,
            # bit = 1 << (ID & 15); every CPU here is in cluster 0
            chosen = rng.sample(range(cpus), rng.randint(1, cpus))
            icr = _icr(mode, LOGICAL | ASSERT | FIXED | vector, sum(1 << k for k in chosen))
        case _:
            flat = rng.random() < 0.5
            # flat: one LDR bit a CPU; cluster (DFR 0x0FFFFFFF): CPU k in cluster 1 + k // 2
            dfr = 0xFFFFFFFF if flat else 0x0FFFFFFF
            ldrs = [(1 << k) if flat else ((1 + k // 2) << 4 | 1 << (k % 2)) for k in range(cpus)]
            for k in range(cpus):
                setup += [Write(Reg.DFR, dfr, cpu=k), Write(Reg.LDR, ldrs[k] << 24, cpu=k)]
            mda = ldrs[other] | (ldrs[rng.randrange(cpus)] if flat else 0)
            icr = _icr(mode, LOGICAL | ASSERT | FIXED | vector, mda)
    return (*setup, Write(Reg.ICR_LOW, icr, cpu=sender), _settle(sender, SMP_SETTLE_TICKS),
            *_irr_reads(vector, cpus))


def smp_nmi(rng: random.Random, mode: Mode, cpus: int) -> Move:
    """NMI (delivery mode 100b) from one CPU to another: taken through vector 2 whatever IF."""
    sender = rng.randrange(cpus)
    other = rng.choice([k for k in range(cpus) if k != sender])
    return (Write(Reg.ICR_LOW, _icr(mode, ASSERT | NMI, other), cpu=sender),
            _settle(sender, SMP_SETTLE_TICKS))


def smp_init_sipi(rng: random.Random, mode: Mode, cpus: int) -> Move:
    """INIT then SIPI from CPU 0 to an AP (§10.4.7.3, §10.6.1): the AP's APIC is reset but for its
    ID and the AP runs again; it software-enables its APIC once more and reads its ID and SVR."""
    ap = rng.randrange(1, cpus)
    return (Write(Reg.ICR_LOW, _icr(mode, ASSERT | INIT, ap)), _settle(0, SMP_SETTLE_TICKS),
            Write(Reg.ICR_LOW, _icr(mode, ASSERT | STARTUP | 0x08, ap)),
            _settle(0, SMP_SETTLE_TICKS), Read(Reg.SVR, cpu=ap), _svr(ap),
            Read(Reg.ID, cpu=ap))


def smp_aliased_ipi(rng: random.Random, cpus: int, vector: int) -> Move:
    """CPU `a` takes CPU `b`'s xAPIC ID (§10.4.6: model specific; the model, KVM and QEMU take
    the write) and reads it back; a fixed IPI from a random CPU to physical ID `b` reaches both
    (§10.6.2.1), seen in the vector's IRR word on every CPU; `a` then writes its own ID back (the
    agent numbers its CPUs by their initial APIC ID, so nothing else depends on it), leaving the
    APICs as the move found them. xAPIC only: the x2APIC ID is read-only (§10.12.5.1)."""
    a, b = rng.sample(range(cpus), 2)
    sender = rng.randrange(cpus)
    return (Write(Reg.ID, b << 24, cpu=a), Read(Reg.ID, cpu=a),
            Write(Reg.ICR_LOW, _icr(Mode.XAPIC_PM32, ASSERT | FIXED | vector, b), cpu=sender),
            _settle(sender, SMP_SETTLE_TICKS), *_irr_reads(vector, cpus),
            Write(Reg.ID, a << 24, cpu=a), Read(Reg.ID, cpu=a))


def base_tour(rng: random.Random, mode: Mode, cpu: int) -> Move:
    """IA32_APIC_BASE transitions of one CPU (§10.12.5 Figure 10-27), legal and illegal (#GP),
    ending in the program's mode with the APIC software-enabled again. IF is cleared first: the
    agent's handler reaches the APIC in the program's mode, which the tour leaves for a while."""
    x2 = mode == Mode.X2APIC_REAL
    home = _base(cpu, EN | (EXTD if x2 else 0))
    steps: list[Step] = [Cli(cpu=cpu)]
    if rng.random() < 0.5:
        steps.append(Wrmsr(IA32_APIC_BASE_MSR, home | 1 << rng.choice(BASE_RESERVED_BITS),
                           cpu=cpu))  # reserved bit: #GP, nothing changes
    if not x2 and rng.random() < 0.5:  # through x2APIC and back (xAPIC → x2APIC is legal)
        steps += [Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, EN | EXTD), cpu=cpu),
                  Rdmsr(0x802, cpu=cpu), Rdmsr(IA32_APIC_BASE_MSR, cpu=cpu)]
        x2 = True
    if x2 and rng.random() < 0.5:
        steps.append(Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, EN), cpu=cpu))  # x2APIC → xAPIC: #GP
    steps.append(Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, 0), cpu=cpu))  # → disabled
    steps.append(Rdmsr(IA32_APIC_BASE_MSR, cpu=cpu))
    for bad in rng.sample((EXTD, EN | EXTD), rng.randint(0, 2)):  # invalid, or disabled → x2APIC
        steps.append(Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, bad), cpu=cpu))
    steps.append(Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, EN), cpu=cpu))  # disabled → xAPIC
    if mode == Mode.X2APIC_REAL:
        steps.append(Wrmsr(IA32_APIC_BASE_MSR, home, cpu=cpu))  # xAPIC → x2APIC
    steps += [_svr(cpu), Read(Reg.SVR, cpu=cpu), Rdmsr(IA32_APIC_BASE_MSR, cpu=cpu)]
    return tuple(steps)


def lint1_move(rng: random.Random, vectors: Sequence[int], *, nmi: bool = True) -> Move:
    """LVT LINT1 set, the platform's pulse on LINT1, a pause, LVT LINT1 masked again (its reset
    value, §10.4.7.1). The entry is masked (the pulse is dropped), NMI with a random vector field
    (ignored) or Fixed, edge, with one of `vectors` (§10.5.1). `nmi=False` leaves NMI out: in
    protected mode the agent's handlers return without IRET, so a second NMI would stay blocked
    on a real backend (`Program._validate_handler`)."""
    kinds = ["masked", "fixed", *(["nmi"] if nmi else [])]
    vector = rng.choice(vectors)
    match rng.choice(kinds):
        case "masked":
            entry = LVT_MASKED | rng.choice((NMI, FIXED)) | vector
        case "nmi":
            entry = NMI | rng.choice((0, vector))
        case _:
            entry = FIXED | vector
    return (Write(Reg.LVT_LINT1, entry), Lint1Pulse(), _settle(),
            Write(Reg.LVT_LINT1, LVT_MASKED))


def _sends_nmi(moves: Sequence[Move]) -> bool:
    return any(isinstance(s, Write) and s.reg == Reg.ICR_LOW and s.value >> 8 & 7 == 4
               for m in moves for s in m)


def timer_move(rng: random.Random, vector: int, cpu: int) -> Move:
    """A divide configuration written and read back, then a short one-shot on `vector` (whose
    handler EOIs), waited for with IF set; the current count reads 0 after it expired."""
    divide = rng.choice(DIVIDES)
    return (Write(Reg.TIMER_DIVIDE, divide, cpu=cpu), Read(Reg.TIMER_DIVIDE, cpu=cpu),
            Write(Reg.LVT_TIMER, vector, cpu=cpu), Sti(cpu=cpu),
            Write(Reg.TIMER_INITIAL, TIMER_COUNT, cpu=cpu),
            Wait(vector, TIMER_WAIT_TICKS, cpu=cpu), Read(Reg.TIMER_CURRENT, cpu=cpu),
            Write(Reg.LVT_TIMER, 0x10000, cpu=cpu))


def sti_hlt_move(mode: Mode, vector: int, cpu: int) -> Move:
    """`sti; hlt` with `vector` pending at STI (§10.8.4 and vol. 2B STI: the interrupt shadow).
    With IF clear, ISR is emptied by EOIs and TPR lowered first, so what is pending is
    deliverable and the HLT wakes."""
    ipi: Step = (Write(Reg.SELF_IPI, vector, cpu=cpu) if mode == Mode.X2APIC_REAL
                 else Write(Reg.ICR_LOW, ICR_SELF_FIXED | vector, cpu=cpu))
    return (Cli(cpu=cpu), *(Write(Reg.EOI, 0, cpu=cpu) for _ in range(8)),
            Write(Reg.TPR, 0, cpu=cpu), ipi, StiHlt(cpu=cpu), _settle(cpu))


def random_move(rng: random.Random, vectors: Sequence[int], mode: Mode, cpus: int, *,
                line: bool = False, timer_vectors: list[int] | None = None) -> Move:
    x2 = mode == Mode.X2APIC_REAL
    smp = cpus > 1
    kinds = ("ipi", "tpr", "eoi", "read", "sti", "cli", "msr", "gp", "nmi", "sti_hlt", "base",
             "timer", "line", "smp_ipi", "smp_nmi", "smp_init", "smp_alias")
    weights = (6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 if timer_vectors else 0, 2 if line else 0,
               6 if smp else 0, 1 if smp else 0, 1 if smp and not x2 else 0,
               1 if smp and not x2 else 0)
    kind = rng.choices(kinds, weights)[0]
    cpu = rng.randrange(cpus)
    match kind:
        case "ipi":
            vector = rng.choice(vectors)
            if x2 and rng.random() < 0.5:
                return (Write(Reg.SELF_IPI, vector, cpu=cpu), _settle(cpu))
            return (Write(Reg.ICR_LOW, ICR_SELF_FIXED | vector, cpu=cpu), _settle(cpu))
        case "tpr":
            tpr = rng.choice((0, 0, rng.choice(vectors) & 0xF0, rng.randrange(256)))
            return (Write(Reg.TPR, tpr, cpu=cpu), _settle(cpu))
        case "eoi":
            return (Write(Reg.EOI, 0, cpu=cpu), _settle(cpu))
        case "read":
            return (Read(rng.choice(READ_REGS), cpu=cpu),)
        case "sti":
            return (Sti(cpu=cpu), _settle(cpu))
        case "msr":
            return (Rdmsr(rng.choice((IA32_APIC_BASE_MSR, IA32_TSC_DEADLINE_MSR)), cpu=cpu),)
        case "gp":
            if x2:
                return (dataclasses.replace(rng.choice(X2APIC_GP), cpu=cpu),)
            if rng.random() < 0.5:  # an x2APIC MSR in xAPIC mode (§10.12.1.2)
                return (Rdmsr(rng.choice((0x802, 0x803, 0x808, 0x80A, 0x830)), cpu=cpu),)
            bit = 1 << rng.choice(BASE_RESERVED_BITS)
            return (Wrmsr(IA32_APIC_BASE_MSR, _base(cpu, EN) | bit, cpu=cpu),)
        case "nmi":  # NMI to the sender's own ID (Table 10-3 allows no NMI with shorthand self)
            return (Write(Reg.ICR_LOW, _icr(mode, ASSERT | NMI, cpu), cpu=cpu),
                    _settle(cpu))
        case "sti_hlt":
            return sti_hlt_move(mode, rng.choice(vectors), cpu)
        case "base":
            return base_tour(rng, mode, cpu)
        case "timer":
            assert timer_vectors
            return timer_move(rng, timer_vectors.pop(), cpu)
        case "line":
            return line_pulse(rng.choice(vectors), level=rng.random() < 0.4,
                              dest=rng.randrange(cpus))
        case "smp_ipi":
            return smp_ipi(rng, mode, cpus, rng.choice(vectors))
        case "smp_nmi":
            return smp_nmi(rng, mode, cpus)
        case "smp_init":
            return smp_init_sipi(rng, mode, cpus)
        case "smp_alias":
            return smp_aliased_ipi(rng, cpus, rng.choice(vectors))
        case _:
            return (Cli(cpu=cpu),)


TIMER_VECTORS = (0x30, 0x50, 0x70, 0x90, 0xB0, 0xD0)  # class heads no other move sends


def random_moves(seed: int, index: int) -> tuple[list[Move], dict[int, Handler], Mode, int]:
    """Program number `index` of the stream of `seed`: its moves, handler policies, mode and
    number of CPUs."""
    rng = random.Random(f"apiclab-conform-{seed}-{index}")
    mode = Mode.X2APIC_REAL if rng.random() < X2APIC_SHARE else Mode.XAPIC_PM32
    cpus = rng.randint(2, 4) if rng.random() < SMP_SHARE else 1
    vectors = rng.sample(VECTORS, rng.randint(2, 5))
    handlers = {v: Handler(eoi=rng.random() < 0.7, log=True) for v in vectors}
    timers = list(rng.sample(TIMER_VECTORS, 2))
    handlers.update({v: Handler(eoi=True, log=True) for v in timers})
    moves: list[Move] = [(Sti(), _settle())] if rng.random() < 0.8 else []
    if cpus > 1:
        moves += [(Sti(cpu=k), _settle(k)) for k in range(1, cpus) if rng.random() < 0.6]
    line = mode == Mode.XAPIC_PM32 and rng.random() < LINE_SHARE
    moves += [random_move(rng, vectors, mode, cpus, line=line, timer_vectors=timers)
              for _ in range(rng.randint(3, 14))]
    lint1 = random.Random(f"apiclab-conform-lint1-{seed}-{index}")
    if cpus == 1 and lint1.random() < LINT1_SHARE:
        move = lint1_move(lint1, vectors,
                          nmi=mode == Mode.X2APIC_REAL or not _sends_nmi(moves))
        moves.insert(lint1.randint(0, len(moves)), move)
    return moves, handlers, mode, cpus


def program_of(moves: Sequence[Move], handlers: dict[int, Handler],
               mode: Mode = Mode.XAPIC_PM32, cpus: int | None = None) -> Program:
    """The program of `moves`: every CPU's APIC software-enabled first. `cpus` defaults to the
    highest CPU a step names, plus one."""
    if cpus is None:
        cpus = 1 + max((s.cpu for m in moves for s in m), default=0)
    steps = (*(_svr(k) for k in range(cpus)), *(s for m in moves for s in m))
    return Program(steps, dict(handlers), Handler(eoi=False, log=True), mode, cpus)


def random_program(seed: int, index: int) -> tuple[Program, list[Move], dict[int, Handler]]:
    moves, handlers, mode, cpus = random_moves(seed, index)
    return program_of(moves, handlers, mode, cpus), moves, handlers
