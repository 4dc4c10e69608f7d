"""LINT1 pulses on QEMU's TCG APIC over QMP `inject-nmi`: the pulse lands at the agent's step and
goes through LVT LINT1 (SDM §10.5.1); only programs with the step get the QMP monitor and COM1."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.qemu import QemuBackend
from apiclab.backends.qemu.backend import command
from apiclab.backends.qemu.lint1 import SERIAL, Lint1Host
from apiclab.conform.case import Case, load_builtin
from apiclab.conform.match import match_expectation
from apiclab.engine.events import fields_of
from apiclab.guest.program import Cli, Handler, Lint1Pulse, Mode, Program, Read, Write

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (qemu-system-x86)")
LINT1_CASES = [c for c in load_builtin() if c.program.pulses_lint1]


def _pulse_then_read(lvt: int) -> Program:
    return Program((Write(Reg.SVR, 0x1FF), Write(Reg.LVT_LINT1, lvt), Cli(), Lint1Pulse(),
                    Read(Reg.LVT_LINT1)), {}, Handler(eoi=False), Mode.XAPIC_PM32)


@needs_qemu
def test_an_nmi_mode_pulse_reaches_the_nmi_handler_at_the_step() -> None:
    result = QemuBackend().run(_pulse_then_read(0x400), timeout_s=20)
    assert result.evidence["lint1_pulses"] == 1
    events = [(e.kind, fields_of(e)) for e in result.trace.guest_visible()]
    assert events[0][0] == "interrupt" and events[0][1]["vector"] == 2
    # the NMI was taken before the step ended: before the read that follows it
    assert events[1] == ("read", {"reg": Reg.LVT_LINT1, "value": 0x400})
    assert "-mon" in str(result.evidence["argv"])


@needs_qemu
def test_a_masked_pulse_is_sent_but_no_nmi_arrives() -> None:
    result = QemuBackend().run(_pulse_then_read(0x10400), timeout_s=20)
    assert result.evidence["lint1_pulses"] == 1
    assert [e.kind for e in result.trace.guest_visible()] == ["read", "end"]


@needs_qemu
@pytest.mark.parametrize("case", LINT1_CASES, ids=lambda c: c.name)
def test_qemu_agrees_with_the_sdm_on_every_lint1_case(case: Case) -> None:
    result = QemuBackend().run(case.program, timeout_s=20)
    assert match_expectation(case, result.trace).agrees


@needs_qemu
def test_a_batch_leaves_lint1_programs_to_their_own_runs() -> None:
    plain = Program((Write(Reg.SVR, 0x1FF), Read(Reg.SVR)), {}, Handler(), Mode.XAPIC_PM32)
    results = QemuBackend().run_batch([plain, _pulse_then_read(0x400)], timeout_s=20)
    assert results[0] is not None and results[1] is None


@needs_qemu
def test_a_marker_the_host_never_answers_fails_the_run_instead_of_judging_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No pulse at the step: what the guest saw says nothing of LINT1 (the masked case would
    'agree'), so the run is an error (the suite reports it as not run, with this reason)."""

    async def read_only(self: Lint1Host, loop: asyncio.AbstractEventLoop, serial: socket.socket,
                        qmp: Any) -> None:
        serial.setblocking(False)
        while await loop.sock_recv(serial, 64):
            pass

    monkeypatch.setattr(Lint1Host, "_answer", read_only)
    with pytest.raises(RuntimeError, match=r"did not answer .*\(0 pulse\(s\) sent\)"):
        QemuBackend().run(_pulse_then_read(0x10400), timeout_s=20)


def test_without_the_step_qemu_gets_no_monitor_and_no_serial_port(tmp_path: Path) -> None:
    argv = command(tmp_path / "r.rom", tmp_path / "d.log")
    assert argv[argv.index("-serial") + 1] == "none"
    assert "-mon" not in argv and "-chardev" not in argv
    assert command(tmp_path / "r.rom", tmp_path / "d.log", serial=SERIAL).count("-serial") == 1


def test_the_host_side_closes_its_sockets_when_qemu_never_came(tmp_path: Path) -> None:
    with Lint1Host(tmp_path) as host:
        assert host.serial_path.exists() and host.qmp_path.exists()
        assert f"socket,id=lint1com,path={host.serial_path}" in host.argv()
    assert host.pulses == 0 and host.error == ""
    assert not host._thread.is_alive()
