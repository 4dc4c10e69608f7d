"""The seed's stuck state as a guest program, and a live QEMU left in it for `diagnose --qmp`.

The program (the conformance case seed-inservice-blocks-clock, without its end): enable the APIC,
send itself 0xE1 with interrupts off, let its handler count it and *not* EOI it (early boot has
no real handler: docs/design.md §4), program the LAPIC timer periodic at 0xD1 and wait for a
tick far longer than anyone will look. 0xE1 stays in service, PPR = 0xE0, and the clock 0xD1
stays in IRR (SDM §10.8.3.1): the state of the Windows 7 0x5C report.

`launch_qemu` boots it as QEMU's firmware (the agent ROM, as `apiclab.backends.qemu` does) with a
QMP socket, so the live machine can be read; the caller stops it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from apiclab.arch.registers import Reg
from apiclab.backends.qemu.backend import QEMU
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import Cli, End, Handler, Mode, Pause, Program, Sti, Wait, Write

CLOCK_VECTOR = 0xD1  # the Windows x64 clock vector
STUCK_VECTOR = 0xE1  # class 0xE: holds the clock off while in service
SELF_IPI_FIXED_EDGE = 0x40000 | 0x4000  # ICR: shorthand self, level assert (SDM §10.6.1)
LVT_TIMER_PERIODIC = 1 << 17
DIVIDE_BY_1 = 0xB
FOREVER_TICKS = 1 << 50  # a TSC deadline no test outlives


def stuck_program(mode: Mode = Mode.XAPIC_PM32, wait_ticks: int = FOREVER_TICKS,
                  period: int = 1_000_000) -> Program:
    steps = (
        Write(Reg.SVR, 0x1FF),
        Cli(),
        Write(Reg.ICR_LOW, SELF_IPI_FIXED_EDGE | STUCK_VECTOR),
        Sti(),
        Pause(200_000),
        Write(Reg.TIMER_DIVIDE, DIVIDE_BY_1),
        Write(Reg.LVT_TIMER, LVT_TIMER_PERIODIC | CLOCK_VECTOR),
        Write(Reg.TIMER_INITIAL, period),
        Wait(CLOCK_VECTOR, wait_ticks),
        End(),
    )
    return Program(steps, {STUCK_VECTOR: Handler(eoi=False, log=True)},
                   Handler(eoi=True, log=True), mode)


def qemu_command(rom: Path, qmp_socket: Path, accel: str = "tcg", smp: int = 1) -> list[str]:
    return [QEMU, "-accel", accel, "-machine", "pc", "-cpu", "qemu64", "-m", "16",
            "-smp", str(smp), "-display", "none", "-nodefaults", "-no-reboot",
            "-bios", str(rom), "-qmp", f"unix:{qmp_socket},server=on,wait=off"]


def launch_qemu(workdir: Path, accel: str = "tcg", settle_s: float = 1.0,
                program: Program | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """QEMU running the stuck program, its QMP socket ready; wait `settle_s` for the guest to
    get stuck. The caller terminates the process."""
    rom = workdir / "agent.rom"
    rom.write_bytes(build_image(program or stuck_program()))
    sock = workdir / "qmp.sock"
    proc = subprocess.Popen(qemu_command(rom, sock, accel), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.kill()
            proc.wait()
            raise RuntimeError(f"QEMU did not open its QMP socket: {err.strip()[:300]}")
        time.sleep(0.05)
    time.sleep(settle_s)
    return proc, sock
