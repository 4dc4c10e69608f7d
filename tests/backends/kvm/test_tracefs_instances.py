"""Private tracefs instances: removed on every way out, EBUSY retried, orphans of dead processes
removed by a later capture. These use the host's tracefs and skip where it is not writable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiclab.backends.kvm import tracefs
from apiclab.backends.kvm.tracefs import TRACEFS, TraceCapture, TraceUnavailable


@pytest.fixture
def instances() -> Iterator[Path]:
    try:
        tracefs.ensure_mounted()
    except TraceUnavailable as e:
        pytest.skip(str(e))
    root = TRACEFS / "instances"
    if not os.access(root, os.W_OK):
        pytest.skip(f"{root} is not writable by this user (tracefs needs root)")
    if not (TRACEFS / "events" / "kvm").is_dir():
        pytest.skip("no kvm tracepoints on this host")
    yield root


def ours(root: Path, pid: int) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(f"apiclab-{pid}-")]


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_an_instance_is_removed_when_the_block_ends_by_an_exception(instances: Path) -> None:
    with pytest.raises(KeyboardInterrupt), TraceCapture(events=("kvm_set_irq",)) as capture:
        assert (capture.instance / "tracing_on").read_text().strip() == "1"
        raise KeyboardInterrupt
    assert ours(instances, os.getpid()) == []


def test_a_busy_instance_is_removed_once_its_last_reader_closes(instances: Path) -> None:
    capture = TraceCapture(events=("kvm_set_irq",)).__enter__()
    with open(capture.instance / "trace"):  # the kernel answers rmdir with EBUSY meanwhile
        assert not tracefs.remove_instance(capture.instance, attempts=2)
        assert (capture.instance / "tracing_on").read_text().strip() == "0"  # stopped, though
    assert tracefs.remove_instance(capture.instance)
    assert ours(instances, os.getpid()) == []


def test_instances_of_dead_processes_are_removed_and_live_ones_kept(instances: Path) -> None:
    dead = instances / f"apiclab-{dead_pid()}-0"
    live_owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    live = instances / f"apiclab-{live_owner.pid}-0"
    try:
        dead.mkdir()
        live.mkdir()
        (dead / "events" / "kvm" / "kvm_set_irq" / "enable").write_text("1")
        removed = tracefs.remove_orphans()
        assert dead.name in removed and not dead.exists()
        assert live.exists()
    finally:
        live_owner.kill()
        live_owner.wait()
        for path in (dead, live):
            if path.exists():
                tracefs.remove_instance(path)
