"""SIGINT and SIGTERM at several moments of each long command: it ends promptly with 130/143 and
one line on stderr, and leaves no emulator process, tracefs instance or temporary file behind.

Each command runs in a process of its own, started as the `apiclab` console script starts it, with TMPDIR a fresh
directory (every temporary file of apiclab goes there, and every emulator's command line names it,
so a leaked emulator is found by its arguments). The bound on the exit is what the command
promises the user (within a second; 1.5 s here for a loaded machine), not a benchmark.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apiclab.backends.kvm.tracefs import TRACEFS

EXIT_BOUND_S = 1.5
# what the console script runs; not `python -m apiclab.cli.main`: started through runpy, this
# Python 3.11 now and then ends by SIGINT after main() caught the Ctrl-C and returned 130
# (seen under strace: the interpreter's own kill(getpid(), SIGINT) at exit; not investigated)
CONSOLE_SCRIPT = "import sys; from apiclab.cli.main import main; sys.exit(main())"
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _kvm_reason() -> str | None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm missing or not usable by this user"
    if not os.access(TRACEFS / "instances", os.W_OK):
        return f"{TRACEFS}/instances missing or not writable (tracefs needs root)"
    return None


KVM = pytest.mark.skipif(_kvm_reason() is not None, reason=str(_kvm_reason()))
BOCHS = pytest.mark.skipif(shutil.which("bochs") is None, reason="bochs is not installed")
EMULATORS = pytest.mark.skipif(
    shutil.which("bochs") is None or shutil.which("qemu-system-x86_64") is None,
    reason="conform's child processes need qemu-system-x86_64 and bochs")

# (command, the moment the signal is sent): READY is as soon as apiclab has installed its
# handlers (start-up: imports, probing the emulators); CHILD as soon as it has a child process
# (an emulator running); a number is seconds after the start (the middle of the run).
READY, CHILD = "ready", "child"
CASES = [
    pytest.param(["conform"], READY, id="conform-start-up"),
    pytest.param(["conform"], 2.0, marks=EMULATORS, id="conform-all-backends-running"),
    pytest.param(["conform", "--random", "1000"], 2.0, marks=EMULATORS, id="conform-random"),
    pytest.param(["kvm", "reproduce", "--trace", "--wait-ms", "20000"], 1.0, marks=KVM,
                 id="kvm-reproduce-trace"),
    pytest.param(["vmx"], READY, marks=BOCHS, id="vmx-start-up"),
    pytest.param(["vmx"], CHILD, marks=BOCHS, id="vmx-bochs-running"),
    pytest.param(["reproduce", "--reboots", "100000"], 1.0, id="reproduce"),
    pytest.param(["explore", "--catalogue"], 1.0, id="explore"),
]


def handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (proc(5): SigCgt, a mask of caught signals): the
    interpreter's own start-up, before apiclab's first line runs, cannot be covered."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def wait_for(moment: str | float, proc: subprocess.Popen[bytes]) -> None:
    if isinstance(moment, float):
        time.sleep(moment)
        return
    end = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < end:
        if handles_sigterm(proc.pid) if moment == READY else descendants(proc.pid):
            return
        time.sleep(0.005)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def naming(directory: Path) -> list[str]:
    """Command lines of live processes that mention `directory` (emulators name their ROM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmdline and entry.name != str(os.getpid()):
                found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("argv", "moment"), CASES)
def test_a_signal_ends_the_command_at_once_and_leaves_nothing(
        tmp_path: Path, argv: list[str], moment: str | float, sig: signal.Signals) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-c", CONSOLE_SCRIPT, *argv], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(moment, proc)
    children = descendants(proc.pid)
    if proc.poll() is not None:
        pytest.skip(f"{' '.join(argv)} ended before the moment ({moment}) on this machine; "
                    "nothing to interrupt")
    proc.send_signal(sig)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running 10 s after {sig.name}")
    took = time.monotonic() - sent
    time.sleep(0.2)  # let init reap what the command may have orphaned
    lines = err.decode(errors="replace").splitlines()
    assert took < EXIT_BOUND_S, f"took {took:.2f} s to exit after {sig.name}"
    assert proc.returncode == STATUS[sig], lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert [p for p in children if alive(p)] == []
    assert naming(tmpdir) == []
    assert list(tmpdir.iterdir()) == []
    if (TRACEFS / "instances").is_dir():
        assert [p.name for p in (TRACEFS / "instances").glob(f"apiclab-{proc.pid}-*")] == []
