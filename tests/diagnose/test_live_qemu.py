"""`diagnose --qmp` against a real QEMU running the agent ROM into the seed's stuck state, and
against sockets that are not QEMU."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apiclab.diagnose.stuck_guest import launch_qemu, stuck_program
from apiclab.guest.program import Mode

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed (qemu-system-x86)")
KVM_SKIP = None if os.access("/dev/kvm", os.R_OK | os.W_OK) else "no usable /dev/kvm here"


def _once_stuck(diagnose: Any, sock: Path, *extra: str) -> Any:
    """diagnose --qmp, repeated (up to ~20 s on a loaded machine) until the guest has reached
    its stuck state: 0xE1 in service and the clock pending."""
    for _ in range(20):
        run = diagnose("--qmp", f"unix:{sock}", "--json", *extra)
        if run.code == 1:
            return run
        time.sleep(1)
    return run


@needs_qemu
def test_tcg_guest_stuck_with_e1_in_service_has_d1_held_off_by_e1(diagnose: Any,
                                                                  tmp_path: Path) -> None:
    proc, sock = launch_qemu(tmp_path, "tcg")
    try:
        run = _once_stuck(diagnose, sock)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait()
    assert alive, "diagnose must leave the guest running"
    assert run.code == 1, run.err
    doc = run.json()
    assert doc["machine"]["accelerator"] == "tcg" and doc["machine"]["run_state"] == "running"
    [cpu] = doc["cpus"]
    assert cpu["isr"] == [0xE1] and cpu["ppr"] == 0xE0 and cpu["if"] is True
    held = [p for p in cpu["pending"] if p["vector"] == 0xD1]
    assert held and held[0]["deliverable"] is False and held[0]["blocking_vector"] == 0xE1


@needs_qemu
def test_pause_stops_and_resumes_the_guest(diagnose: Any, tmp_path: Path) -> None:
    proc, sock = launch_qemu(tmp_path, "tcg")
    try:
        run = _once_stuck(diagnose, sock, "--pause")
        again = diagnose("--qmp", f"unix:{sock}", "--json")
    finally:
        proc.terminate()
        proc.wait()
    assert run.code == 1 and again.json()["machine"]["run_state"] == "running"


@needs_qemu
@pytest.mark.skipif(KVM_SKIP is not None, reason=KVM_SKIP or "")
def test_kvm_accelerated_qemu_is_read_through_kvm_get_lapic(diagnose: Any,
                                                           tmp_path: Path) -> None:
    """QEMU -accel kvm, the guest in x2APIC real mode. The verdict must be the SDM's on the
    registers QEMU reports; whether 0xE1 is still in service depends on the host's KVM (this
    machine's kvm_pvm EOIs a real-mode vector as it injects it: docs/kvm.md)."""
    proc, sock = launch_qemu(tmp_path, "kvm", program=stuck_program(Mode.X2APIC_REAL))
    try:
        run = diagnose("--qmp", f"unix:{sock}", "--json")
    finally:
        proc.terminate()
        proc.wait()
    assert run.code in (0, 1), run.err
    doc = run.json()
    assert doc["machine"]["accelerator"] == "kvm"
    assert any("irqchip in the kernel" in n for n in doc["notes"])
    cpu = doc["cpus"][0]
    if 0xE1 not in cpu["isr"]:
        pytest.skip(f"this host's KVM left ISR {cpu['isr']} (0xE1 EOIed by the hypervisor)")
    held = [p for p in cpu["pending"] if p["vector"] == 0xD1]
    assert held and held[0]["blocking_vector"] == 0xE1


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A unix socket that answers like something other than QEMU: `greeting` is sent, or
    nothing (silent) if it is empty."""
    path = tmp_path / "fake.sock"
    greeting: list[bytes] = [b"SSH-2.0-OpenSSH_9.2\r\n"]
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        conns = []
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            if greeting[0]:
                conn.sendall(greeting[0])
            conns.append(conn)
        for c in conns:
            c.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, greeting
    stop.set()
    thread.join()
    srv.close()


def _one_line_exit_2(run: Any) -> None:
    assert run.code == 2, run.out
    assert run.err.count("\n") == 1 and "Traceback" not in run.err


def test_a_socket_that_is_not_qemu_is_one_line(diagnose: Any,
                                               fake_server: tuple[Path, list[bytes]]) -> None:
    path, _ = fake_server
    run = diagnose("--qmp", f"unix:{path}", "--timeout", "3")
    _one_line_exit_2(run)


def test_a_silent_socket_times_out_in_one_line(diagnose: Any,
                                               fake_server: tuple[Path, list[bytes]]) -> None:
    path, greeting = fake_server
    greeting[0] = b""
    run = diagnose("--qmp", f"unix:{path}", "--timeout", "1")
    _one_line_exit_2(run)
    assert "within 1 s" in run.err


def test_a_refused_or_missing_socket_is_one_line(diagnose: Any, tmp_path: Path) -> None:
    _one_line_exit_2(diagnose("--qmp", f"unix:{tmp_path / 'none.sock'}"))
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    _one_line_exit_2(diagnose("--qmp", f"127.0.0.1:{port}"))
    _one_line_exit_2(diagnose("--qmp", "not an address"))
