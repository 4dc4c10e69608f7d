"""End to end on QEMU's TCG APIC: a handful of suite cases on the real emulator."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from apiclab.backends.qemu import QemuBackend
from apiclab.backends.qemu.backend import command
from apiclab.conform.case import load_builtin
from apiclab.conform.match import match_expectation

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (qemu-system-x86)")
CASES = {c.name: c for c in load_builtin()}


def test_command_line_boots_the_rom_as_bios_with_debugcon_and_debug_exit(tmp_path: Path) -> None:
    argv = command(tmp_path / "r.rom", tmp_path / "d.log")
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-bios") + 1] == str(tmp_path / "r.rom")
    assert "isa-debug-exit,iobase=0x501,iosize=2" in argv
    assert "-nodefaults" in argv and "-nographic" in argv


@needs_qemu
@pytest.mark.parametrize("name", ["dispatch-highest-class-first", "inservice-blocks-lower-class",
                                  "timer-one-shot"])
def test_qemu_agrees_with_the_sdm_on_dispatch_and_timer_cases(name: str) -> None:
    result = QemuBackend().run(CASES[name].program, timeout_s=20)
    verdict = match_expectation(CASES[name], result.trace)
    assert verdict.agrees, verdict


@needs_qemu
def test_qemu_delivers_an_illegal_vector_where_the_sdm_forbids_it() -> None:
    """A finding (docs/conform.md): QEMU 7.2 delivers self-IPI vector 5 as if legal."""
    result = QemuBackend().run(CASES["illegal-vector-ipi"].program, timeout_s=20)
    events = result.trace.guest_visible()
    assert events[0].kind == "fault" and events[0].vector == 5


@needs_qemu
def test_a_hanging_guest_is_killed_at_the_time_out() -> None:
    from apiclab.guest.program import Cli, Hlt, Mode, Program

    hang = Program((Cli(), Hlt()), mode=Mode.XAPIC_PM32)
    result = QemuBackend().run(hang, timeout_s=1.0)
    assert result.timed_out
    assert [e.kind for e in result.trace.guest_visible()] == []


@needs_qemu
def test_a_timed_out_run_leaves_no_temporary_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from apiclab.guest.program import Cli, Hlt, Mode, Program

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hang = Program((Cli(), Hlt()), mode=Mode.XAPIC_PM32)
    assert QemuBackend().run(hang, timeout_s=1.0).timed_out
    assert list(tmp_path.iterdir()) == []


def test_unavailable_when_qemu_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from apiclab.backends.qemu import backend

    backend._version.cache_clear()
    monkeypatch.setattr("shutil.which", lambda name: None)
    try:
        avail = QemuBackend().availability()
        assert not avail.available and "not installed" in avail.detail
    finally:
        backend._version.cache_clear()


def test_a_program_for_three_cpus_gets_smp_and_a_log_port_per_ap(tmp_path: Path) -> None:
    argv = command(tmp_path / "r.rom", tmp_path / "d.log",
                   ap_logs=[tmp_path / "c1.log", tmp_path / "c2.log"])
    assert argv[argv.index("-smp") + 1] == "3"
    assert f"file,id=aplog2,path={tmp_path / 'c2.log'}" in argv
    assert "isa-debugcon,iobase=0x7e1,chardev=aplog1" in argv
    assert "-smp" not in command(tmp_path / "r.rom", tmp_path / "d.log")


@needs_qemu
@pytest.mark.parametrize("name", ["smp-ipi-physical-to-other", "smp-init-reset-keeps-apic-id"])
def test_multi_cpu_cases_run_with_each_event_on_its_cpu(name: str) -> None:
    # the APs wait for SIPI from power-on; the agent's CPU 0 starts them (agent.S interp)
    case = CASES[name]
    result = QemuBackend().run(case.program, timeout_s=20.0)
    assert not result.timed_out, result.evidence
    verdict = match_expectation(case, result.trace)
    assert verdict.agrees, verdict.as_dict()
