"""`conform --random` over the whole case vocabulary: what the generator draws, that the model
runs every program to its end the same way twice, that the moves leave the APIC as the SDM says,
and that a shrunk multi-CPU disagreement is saved as a case the reader loads back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.conform.case import load_case
from apiclab.conform.differential import _save, campaign, shrink
from apiclab.conform.generate import (
    BASE,
    BSP_BIT,
    EN,
    EXTD,
    IA32_APIC_BASE_MSR,
    TIMER_VECTORS,
    random_program,
)
from apiclab.engine.events import fields_of
from apiclab.engine.trace import Trace
from apiclab.guest.program import (
    Mode,
    Out,
    Program,
    Rdmsr,
    StiHlt,
    Write,
    Wrmsr,
)
from apiclab.guest.program import testdev_line as line_of
from apiclab.hypervisor.program_run import run_program

N = 200
PROGRAMS = [random_program(1, i)[0] for i in range(N)]


def _icr_writes(program: Program) -> list[int]:
    return [s.value for s in program.steps if isinstance(s, Write) and s.reg == Reg.ICR_LOW]


def test_the_generator_draws_the_whole_vocabulary() -> None:
    cpus = Counter(p.cpus for p in PROGRAMS)
    assert {1, 2, 3, 4} <= set(cpus) and cpus[1] < N
    assert {p.mode for p in PROGRAMS} == {Mode.XAPIC_PM32, Mode.X2APIC_REAL}
    icrs = [v for p in PROGRAMS if p.cpus > 1 for v in _icr_writes(p)]
    shorthands = {v >> 18 & 3 for v in icrs}
    modes = {v >> 8 & 7 for v in icrs}
    assert shorthands == {0, 1, 2, 3}  # none, self, all including self, all but self
    assert {0, 1, 4, 5, 6} <= modes  # fixed, lowest priority, NMI, INIT, SIPI
    assert any(v >> 11 & 1 for v in icrs)  # logical destinations
    assert any(v >> 56 == 0xFF for v in icrs)  # physical broadcast
    id_writes = [(p.mode, p.cpus, s.cpu, s.value) for p in PROGRAMS for s in p.steps
                 if isinstance(s, Write) and s.reg == Reg.ID]
    assert id_writes  # two APICs sharing one physical ID (§10.4.6, §10.6.2.1)
    assert all(mode == Mode.XAPIC_PM32 and cpus > 1 for mode, cpus, _, _ in id_writes)
    one_cpu = [v for p in PROGRAMS if p.cpus == 1 for v in _icr_writes(p)]
    assert any(v >> 8 & 7 == 4 for v in one_cpu)  # NMI to self
    steps = [s for p in PROGRAMS for s in p.steps]
    assert any(isinstance(s, StiHlt) for s in steps)
    divides = {s.value for s in steps if isinstance(s, Write) and s.reg == Reg.TIMER_DIVIDE}
    assert divides == {0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB}  # every divide (§10.5.4)
    bases = {s.value for s in steps if isinstance(s, Wrmsr) and s.msr == IA32_APIC_BASE_MSR}
    assert any(not v & EN for v in bases) and any(v & EXTD for v in bases)
    assert any(isinstance(s, Rdmsr) and s.msr >= 0x800 for s in steps)
    lines = [s for s in steps if isinstance(s, Out) and line_of(s.port) is not None]
    assert lines and not any(isinstance(s, Out) and line_of(s.port) is not None
                             for p in PROGRAMS if p.mode == Mode.X2APIC_REAL for s in p.steps)


def _events(program: Program) -> list[dict[str, Any]]:
    return [{"kind": e.kind, **fields_of(e)} for e in run_program(program).guest_visible()]


def test_the_model_runs_every_program_to_its_end_the_same_way_twice() -> None:
    kinds: Counter[str] = Counter()
    for program in PROGRAMS[:120]:
        first, again = _events(program), _events(program)
        assert first == again
        assert first[-1]["kind"] == "end"
        kinds.update(e["kind"] for e in first)
    assert kinds["fault"] and kinds["interrupt"] and kinds["wait"] and kinds["read"]


def test_every_apic_base_tour_ends_in_the_programs_mode_software_enabled() -> None:
    """§10.12.5: the tour's last IA32_APIC_BASE read shows the program's mode again (EN, with
    EXTD in x2APIC mode, BSP on CPU 0 only), and SVR reads what the move wrote after the reset
    that a global disable makes (§10.4.3)."""
    seen = 0
    for program in PROGRAMS:
        events = _events(program)
        for i, e in enumerate(events):
            if e["kind"] == "read" and e.get("reg") == Reg.SVR and i + 1 < len(events):
                after = events[i + 1]
                if after["kind"] == "read" and after.get("msr") == IA32_APIC_BASE_MSR:
                    cpu = e.get("cpu", 0)
                    want = BASE | EN | (EXTD if program.mode == Mode.X2APIC_REAL else 0)
                    assert after["value"] == want | (BSP_BIT if cpu == 0 else 0)
                    assert e["value"] == 0x1FF
                    seen += 1
    assert seen >= 5


def test_every_timer_one_shot_is_waited_for_and_reads_zero_after() -> None:
    waited = 0
    for program in PROGRAMS[:120]:
        events = _events(program)
        for i, e in enumerate(events):
            if e["kind"] == "wait" and e["vector"] in TIMER_VECTORS and e["outcome"] == "done":
                nxt = next(x for x in events[i + 1:] if x["kind"] == "read")
                assert nxt["reg"] == Reg.TIMER_CURRENT and nxt["value"] == 0
                waited += 1
    assert waited >= 5


class SkewedApic:
    """A fake real backend: the model's events, but on programs for several CPUs the last
    interrupt's vector is off by one; one-CPU programs it cannot run."""

    name = "skewed"

    def availability(self) -> Availability:
        return Availability(True, "fake")

    def run(self, program: Program, *, lapic_image: object = None,
            timeout_s: float = 5.0) -> RunResult:
        if program.cpus == 1:
            raise BackendUnavailable("one CPU: not this backend's")
        trace = run_program(program)
        out = Trace()
        events = list(trace)
        last = max((i for i, e in enumerate(events) if e.kind == "interrupt"), default=-1)
        for i, e in enumerate(events):
            data = fields_of(e)
            if i == last:
                data["vector"] = data["vector"] + 1
            out.record(e.time, type(e), **data)
        return RunResult(trace=out, timed_out=False, evidence={})


class Model:
    name = "model"

    def availability(self) -> Availability:
        return Availability(True, "model")

    def run(self, program: Program, *, lapic_image: object = None,
            timeout_s: float = 5.0) -> RunResult:
        return RunResult(trace=run_program(program), timed_out=False, evidence={})


def test_a_shrunk_multi_cpu_disagreement_is_saved_as_a_case_the_reader_loads(
        tmp_path: Path) -> None:
    stats, found, _ = campaign(30, 1, Model(), {"skewed": SkewedApic()})  # type: ignore[dict-item]
    assert stats["skewed"].not_run == sum(p.cpus == 1 for p in PROGRAMS[:30]) > 0
    assert stats["skewed"].errors == 0
    assert found and all(d.cpus > 1 for d in found)
    d = found[0]
    shrink(d, Model(), SkewedApic())  # type: ignore[arg-type]
    assert d.shrunk is not None and d.shrunk.cpus == d.cpus and d.shrunk.mode == d.mode
    case = load_case(_save(d, 1, tmp_path))
    assert case.program == d.shrunk
    assert case.program.cpus > 1


@pytest.mark.parametrize("seed", [0, 7])
def test_random_programs_stay_a_pure_function_of_seed_and_index(seed: int) -> None:
    assert [random_program(seed, i)[0] for i in range(5)] == \
        [random_program(seed, i)[0] for i in range(5)]


def test_an_aliased_id_move_reaches_both_apics_and_gives_the_id_back() -> None:
    """The generator's shared-ID move on the model, IF = 0 everywhere: CPU a reads CPU b's ID,
    the IPI to that ID is in IRR on a and b only (§10.6.2.1), and a reads its own ID again."""
    import random

    from apiclab.conform.generate import program_of, smp_aliased_ipi

    seen = set()
    for i in range(12):
        move = smp_aliased_ipi(random.Random(i), 4, 0x52)
        a, b = move[0].cpu, move[0].value >> 24
        seen.add((a, b))
        reads = [e for e in _events(program_of([move], {}, Mode.XAPIC_PM32, 4))
                 if e["kind"] == "read"]
        assert [e["value"] for e in reads if e["reg"] == Reg.ID] == [b << 24, a << 24]
        irr = {e["cpu"]: e["value"] for e in reads if e["reg"] == Reg.IRR0 + 0x20}
        assert irr == {k: (1 << (0x52 - 64)) if k in (a, b) else 0 for k in range(4)}
    assert len(seen) > 3
