"""End to end on Bochs' APIC: a handful of suite cases on the real emulator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from apiclab.backends.bochs import BochsBackend
from apiclab.backends.bochs.backend import config, unavailable_reason
from apiclab.conform.case import load_builtin
from apiclab.conform.match import match_expectation

# skips with the backend's own one-line reason: bochs missing, or no VGA ROM for it
BOCHS_MISSING = unavailable_reason()
needs_bochs = pytest.mark.skipif(BOCHS_MISSING is not None, reason=f"{BOCHS_MISSING}")
CASES = {c.name: c for c in load_builtin()}


def test_config_is_headless_with_port_e9_and_an_x2apic_cpu(tmp_path: Path) -> None:
    text = config(tmp_path / "r.rom", tmp_path / "vga.bin")
    assert f"romimage: file={tmp_path / 'r.rom'}" in text
    assert f"vgaromimage: file={tmp_path / 'vga.bin'}" in text
    assert "port_e9_hack: enabled=1" in text
    assert "model=corei7_skylake_x" in text
    assert 'display_library: rfb, options="timeout=0"' in text
    assert "count=1," in text
    assert "count=3," in config(tmp_path / "r.rom", tmp_path / "vga.bin", cpus=3)


@needs_bochs
@pytest.mark.parametrize("name", ["dispatch-highest-class-first", "x2apic-self-ipi-msr",
                                  "timer-tsc-deadline"])
def test_bochs_agrees_with_the_sdm_in_both_agent_modes(name: str) -> None:
    result = BochsBackend().run(CASES[name].program, timeout_s=20)
    verdict = match_expectation(CASES[name], result.trace)
    assert verdict.agrees, verdict


@needs_bochs
def test_bochs_signals_a_spurious_interrupt_for_a_same_class_vector() -> None:
    """A finding (docs/conform.md): Bochs compares vectors, not classes, before raising INTR."""
    result = BochsBackend().run(CASES["inservice-blocks-same-class"].program, timeout_s=20)
    vectors = [e.vector for e in result.trace.of_kind("interrupt")]
    assert vectors == [0x85, 0xFF, 0x8A]


@needs_bochs
def test_a_hanging_guest_is_killed_at_the_time_out(tmp_path: Path) -> None:
    from apiclab.guest.program import Cli, Hlt, Mode, Program

    hang = Program((Cli(), Hlt()), mode=Mode.XAPIC_PM32)
    result = BochsBackend().run(hang, timeout_s=1.0)
    assert result.timed_out


@needs_bochs
def test_a_timed_out_run_leaves_no_temporary_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from apiclab.guest.program import Cli, Hlt, Mode, Program

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hang = Program((Cli(), Hlt()), mode=Mode.XAPIC_PM32)
    assert BochsBackend().run(hang, timeout_s=1.0).timed_out
    assert list(tmp_path.iterdir()) == []


@needs_bochs
def test_a_program_for_two_cpus_runs_on_bochs_and_both_cpus_records_arrive() -> None:
    """CPU 1's records reach the host through the agent's relay (port 0xE9 only on Bochs)."""
    case = CASES["smp-ipi-physical-to-other"]
    result = BochsBackend().run(case.program, timeout_s=20)
    assert not result.timed_out
    assert "=01" in result.evidence["port_e9"].splitlines()  # CPU 1's part of the relay
    reads = [(e.cpu, e.reg) for e in result.trace.of_kind("read")]
    assert reads == [(0, 0x220), (1, 0x220)]  # IRR2 (0x220) of the sender, then of the target
    assert [e.kind for e in result.trace.events][-1] == "end"
    assert match_expectation(case, result.trace).agrees
