"""Delta debugging, and the differential mode's shrinking of a planted disagreement."""

from __future__ import annotations

from pathlib import Path

from apiclab.arch.registers import Reg
from apiclab.backends.base import Availability, RunResult
from apiclab.conform.case import load_case
from apiclab.conform.differential import Disagreement, campaign, shrink
from apiclab.conform.generate import random_program
from apiclab.conform.shrink import ddmin
from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.guest.program import Cli, Pause, Program, Read, Step, Sti, Write


def test_ddmin_finds_the_two_items_that_together_fail() -> None:
    calls: list[list[int]] = []

    def fails(xs: list[int]) -> bool:
        calls.append(xs)
        return 3 in xs and 17 in xs

    assert ddmin(list(range(40)), fails) == [3, 17]
    assert len(calls) < 80


def test_ddmin_result_is_one_minimal() -> None:
    def fails(xs: list[int]) -> bool:
        return sum(xs) >= 30

    out = ddmin(list(range(12)), fails)
    assert fails(out)
    assert all(not fails(out[:i] + out[i + 1:]) for i in range(len(out)))


class FakeApic:
    """Reports one read event per READ step; `buggy` also mis-reports PPR after a TPR write of
    0x47 that follows an IPI of vector 0x4F -- a planted two-step disagreement."""

    def __init__(self, name: str, buggy: bool) -> None:
        self.name = name
        self.buggy = buggy
        self.runs = 0

    def availability(self) -> Availability:
        return Availability(True, "fake")

    def run(self, program: Program, *, lapic_image: object = None,
            timeout_s: float = 5.0) -> RunResult:
        self.runs += 1
        trace = Trace()
        sent = armed = False
        for step in program.steps:
            if isinstance(step, Write) and step.reg == Reg.ICR_LOW and step.value & 0xFF == 0x4F:
                sent = True
            if isinstance(step, Write) and step.reg == Reg.TPR and step.value == 0x47 and sent:
                armed = True
            if isinstance(step, Read):
                value = 0xFF if (self.buggy and armed) else 0
                trace.record(0, evt.Read, reg=step.reg, value=value)
        trace.record(0, evt.End)
        return RunResult(trace)


def planted_moves() -> list[tuple[Step, ...]]:
    noise = [(Write(Reg.EOI, 0),), (Sti(),), (Cli(),), (Write(Reg.TPR, 0x10),)]
    return [*noise, (Write(Reg.ICR_LOW, 0x4404F), Pause(20000)), *noise,
            (Write(Reg.TPR, 0x47), Pause(20000)), *noise,
            (Read(Reg.PPR),), *noise]


def test_a_planted_disagreement_shrinks_to_the_known_minimal_program(tmp_path: Path) -> None:
    model, real = FakeApic("model", False), FakeApic("fake", True)
    moves = planted_moves()
    d = Disagreement(0, "fake", ("fake", "read", "read", "value"), moves, {},
                     [], [], 0)
    shrink(d, model, real)
    assert d.shrunk is not None
    ops = list(d.shrunk.steps)
    assert ops == [
        Write(Reg.SVR, 0x1FF),
        Write(Reg.ICR_LOW, 0x4404F), Pause(20000),
        Write(Reg.TPR, 0x47), Pause(20000),
        Read(Reg.PPR),
    ]
    assert d.shrunk_backend[0]["value"] == 0xFF and d.shrunk_model[0]["value"] == 0


def test_campaign_finds_only_real_disagreements_and_candidates_load_as_cases(
        tmp_path: Path) -> None:
    from apiclab.conform.differential import _save

    model, same = FakeApic("model", False), FakeApic("same", False)
    stats, found, _ = campaign(20, 7, model, {"same": same})
    assert found == [] and stats["same"].agree == 20
    d = Disagreement(0, "fake", ("fake", "read", "read", "value"), planted_moves(), {}, [], [], 0)
    shrink(d, model, FakeApic("fake", True))
    path = _save(d, 7, tmp_path)
    case = load_case(path)  # a candidate is a valid case file of the suite's own format
    assert case.program.steps == d.shrunk.steps if d.shrunk else False
    assert [e.kind for e in case.expected_events()] == ["read", "end"]


def test_random_programs_are_a_pure_function_of_the_seed() -> None:
    assert random_program(5, 3)[0] == random_program(5, 3)[0]
    assert random_program(5, 3)[0] != random_program(6, 3)[0]
    program = random_program(5, 3)[0]
    program.validate()
    assert program.mode.value == "xapic-pm32"


def test_random_programs_draw_msr_reads_and_ioapic_line_pulses_some_of_the_time() -> None:
    from apiclab.guest.program import Out, Rdmsr, testdev_line
    from apiclab.hypervisor.program_run import run_program

    programs = [random_program(1, i)[0] for i in range(60)]
    with_line = [p for p in programs
                 if any(isinstance(s, Out) and testdev_line(s.port) is not None for s in p.steps)]
    # the two MSRs readable in both modes (§10.4.4, §10.5.4.1): these reads never fault
    legal = (0x1B, 0x6E0)
    with_msr = [p for p in programs
                if any(isinstance(s, Rdmsr) and s.msr in legal for s in p.steps)]
    assert 0 < len(with_line) < len(programs)  # the rest stay runnable on Bochs
    assert with_msr
    for program in with_line[:3] + with_msr[:3]:
        program.validate()
        events = run_program(program).guest_visible()
        assert events[-1].kind == "end"
        reads = sum(isinstance(s, Rdmsr) and s.msr in legal for s in program.steps)
        assert reads <= sum(isinstance(e, evt.Read) and e.msr in legal for e in events)
