"""Running one guest program on `bochs -q -f CONFIG`."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.guest.agent import log
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import Program

BOCHS = "bochs"
# Bochs' TSC advances one tick per emulated instruction at `ips` instructions per second.
IPS = 50_000_000
TSC_KHZ = IPS // 1000
SHUTDOWN = "Shutdown port: shutdown requested"  # the agent's "Shutdown" to port 0x8900
# Bochs' VNC server takes a port in 5900-5949; when a burst of runs (or another user) holds all of
# them, Bochs exits before the guest starts, and a moment later the run can simply be repeated.
RFB_BUSY = "RFB could not bind any port"
RFB_RETRIES = 5


def config(rom: Path) -> str:
    """A headless PC whose firmware is the agent ROM (SEMANTICS §5 recipe)."""
    return "\n".join([
        "megs: 2",  # the agent lives below 64 KiB; less memory boots faster
        f"romimage: file={rom}",
        # Skylake-X has x2APIC and TSC-deadline (Bochs' default CPU has xAPIC only)
        f"cpu: model=corei7_skylake_x, count=1, ips={IPS}, reset_on_triple_fault=0",
        'display_library: rfb, options="timeout=0"',  # no VNC client is awaited
        "port_e9_hack: enabled=1",
        "sound: waveoutdrv=dummy",
        "speaker: enabled=0",
        "parport1: enabled=0",
        "com1: enabled=0",
        "log: -",
        "panic: action=fatal",
        "error: action=report",
        "info: action=ignore",
        "debug: action=ignore",
        "",
    ])


@cache
def _version() -> str:
    path = shutil.which(BOCHS)
    if path is None:
        raise BackendUnavailable(f"{BOCHS} is not installed (Debian packages bochs bochsbios)")
    try:
        proc = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"{BOCHS} --help failed: {e}") from None
    found = re.search(r"Bochs x86 Emulator (\S+)", proc.stdout + proc.stderr)
    return f"Bochs {found.group(1)}" if found else "Bochs (version unknown)"


class BochsBackend:
    name = "bochs"

    def availability(self) -> Availability:
        try:
            return Availability(True, _version() + " (cpu corei7_skylake_x)")
        except BackendUnavailable as e:
            return Availability(False, str(e))

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult:
        if lapic_image is not None:
            raise BackendUnavailable("Bochs cannot load a KVM_SET_LAPIC register image")
        path = shutil.which(BOCHS)
        if path is None:
            _version()
        rom_bytes = build_image(program)
        with tempfile.TemporaryDirectory(prefix="apiclab-bochs-") as tmp:
            rom, cfg = Path(tmp) / "agent.rom", Path(tmp) / "bochsrc"
            rom.write_bytes(rom_bytes)
            cfg.write_text(config(rom))
            argv = [path or BOCHS, "-q", "-f", str(cfg)]
            for attempt in range(RFB_RETRIES):
                output, status, stderr, timed_out = _run_bochs(argv, tmp, timeout_s)
                if RFB_BUSY not in stderr + output.decode("ascii", errors="replace"):
                    break
                time.sleep(0.2 * (attempt + 1))
        text = output.decode("ascii", errors="replace")
        trace = log.decode(text, TSC_KHZ)
        if not timed_out and SHUTDOWN not in text + stderr and not trace.of_kind("end"):
            tail = (text + stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"Bochs exited with status {status}: {' | '.join(tail)[:300]}")
        records = "\n".join(line for line in text.splitlines() if line.startswith("@"))
        evidence = {"argv": " ".join(argv), "exit_status": status, "port_e9": records,
                    "bochs_messages": _messages(text)}
        return RunResult(trace=trace, timed_out=timed_out, evidence=evidence)


def _run_bochs(argv: list[str], cwd: str, timeout_s: float) -> tuple[bytes, int, str, bool]:
    """One Bochs process: (stdout, exit status, stderr, timed out)."""
    try:
        # "c" continues from the debugger prompt; subprocess.run kills and reaps the child when
        # the time-out expires
        proc = subprocess.run(argv, input=b"c\n", capture_output=True, cwd=cwd,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        return (e.stdout if isinstance(e.stdout, bytes) else b""), -1, "", True
    return proc.stdout, proc.returncode, proc.stderr.decode(errors="replace"), False


def _messages(text: str) -> str:
    """Bochs' own error and panic lines (e.g. APIC errors it reports), without the banner."""
    keep = [line for line in text.splitlines()
            if re.match(r"^\d{11}[epi]\[", line) and "PLUGIN" not in line]
    return "\n".join(keep[-20:])
