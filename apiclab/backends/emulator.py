"""What the QEMU and Bochs backends do alike around one emulator process.

Both find the emulator and ask it its version once, write the program's agent ROM into a fresh
temporary directory, and run the emulator as a child process that is killed and reaped when the
time-out expires; the directory is removed however the run ends. What differs (the command line,
where the agent's port-0xE9 records land, how a run is judged finished) stays in each backend.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apiclab.backends.base import Availability, BackendUnavailable
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import Program


def probe(program: str, flag: str, install: str) -> subprocess.CompletedProcess[str]:
    """`program flag` run once, e.g. `qemu-system-x86_64 --version`; BackendUnavailable when the
    program is not on PATH (`install` says which Debian packages bring it) or does not answer."""
    path = shutil.which(program)
    if path is None:
        raise BackendUnavailable(f"{program} is not installed ({install})")
    try:
        return subprocess.run([path, flag], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"{program} {flag} failed: {e}") from None


def availability(version: Callable[[], str], what: str) -> Availability:
    """Available as `version()` followed by `what`, or unavailable with the reason it raised."""
    try:
        return Availability(True, version() + what)
    except BackendUnavailable as e:
        return Availability(False, str(e))


@contextmanager
def agent_rom(program: Program, emulator: str) -> Iterator[Path]:
    """The program's agent ROM as `agent.rom` in a temporary directory of its own, where the
    emulator's other files can go too; the directory is removed when the block ends, also when it
    ends by an exception. The image is built first, so a bad program creates no directory."""
    rom_bytes = build_image(program)
    with tempfile.TemporaryDirectory(prefix=f"apiclab-{emulator}-") as tmp:
        rom = Path(tmp) / "agent.rom"
        rom.write_bytes(rom_bytes)
        yield rom


@dataclass(frozen=True)
class ChildExit:
    """How one emulator process ended."""

    stdout: bytes  # all it wrote, or what it had written when it was killed
    status: int  # its exit status, -1 when it was killed at the time-out
    stderr: str  # "" when it was killed at the time-out
    timed_out: bool


def run_child(
    argv: list[str],
    timeout_s: float,
    *,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> ChildExit:
    """Run `argv` to its end, feeding it `stdin` (or /dev/null), for at most `timeout_s` seconds."""
    try:
        # subprocess.run kills and reaps the child when the time-out expires
        proc = subprocess.run(argv, input=stdin,
                              stdin=subprocess.DEVNULL if stdin is None else None,
                              capture_output=True, cwd=cwd, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        return ChildExit(e.stdout if isinstance(e.stdout, bytes) else b"", -1, "", True)
    return ChildExit(proc.stdout, proc.returncode, proc.stderr.decode(errors="replace"), False)
