"""`conform --random` draws LINT1 pulses (SDM §10.5.1) in one-CPU programs, in each LVT mode,
never a second NMI where the agent's protected-mode handlers could not take it, and each pulse
move leaves LVT LINT1 masked as it was."""

from __future__ import annotations

from apiclab.arch.registers import Reg
from apiclab.conform.generate import random_program
from apiclab.guest.program import Lint1Pulse, Mode, Program, Write
from apiclab.hypervisor.program_run import run_program

PROGRAMS = [random_program(3, i)[0] for i in range(200)]
PULSING = [p for p in PROGRAMS if p.pulses_lint1]


def _lvt_writes(program: Program) -> list[int]:
    return [s.value for s in program.steps if isinstance(s, Write) and s.reg == Reg.LVT_LINT1]


def _nmi_ipis(program: Program) -> int:
    return sum(1 for s in program.steps
               if isinstance(s, Write) and s.reg == Reg.ICR_LOW and s.value >> 8 & 7 == 4)


def test_some_one_cpu_programs_pulse_lint1_and_no_other_does() -> None:
    assert 10 <= len(PULSING) <= 80
    assert all(p.cpus == 1 for p in PULSING)
    assert {p.mode for p in PULSING} == {Mode.XAPIC_PM32, Mode.X2APIC_REAL}


def test_the_pulses_come_masked_as_nmi_and_as_fixed_and_end_masked() -> None:
    entries = [v for p in PULSING for v in _lvt_writes(p)]
    pulsed = [v for v in entries if v != 0x10000]
    assert any(v >> 16 for v in pulsed)  # masked
    assert any(not v >> 16 and v >> 8 & 7 == 4 for v in pulsed)  # NMI
    assert any(not v >> 16 and v >> 8 & 7 == 0 and v & 0xFF >= 0x20 for v in pulsed)  # Fixed
    for p in PULSING:
        i = next(k for k, s in enumerate(p.steps) if isinstance(s, Lint1Pulse))
        assert isinstance(p.steps[i - 1], Write) and p.steps[i - 1].reg == Reg.LVT_LINT1
        assert _lvt_writes(p)[-1] == 0x10000


def test_no_nmi_pulse_in_a_protected_mode_program_that_already_sends_an_nmi() -> None:
    for p in PULSING:
        nmi_pulse = any(not v >> 16 and v >> 8 & 7 == 4 for v in _lvt_writes(p))
        if p.mode == Mode.XAPIC_PM32 and _nmi_ipis(p):
            assert not nmi_pulse


def test_the_model_runs_every_pulsing_program_to_its_end() -> None:
    for p in PULSING:
        events = run_program(p).guest_visible()
        assert events[-1].kind == "end"
