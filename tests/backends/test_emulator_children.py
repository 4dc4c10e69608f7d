"""Emulator children: killed and reaped at a time-out, an interruption of their thread, or an
interruption of the pool that waits on them; temporary directories removed on every path."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from apiclab.backends import emulator
from apiclab.backends.emulator import ChildPool, run_child, running_children

needs_sleep = pytest.mark.skipif(shutil.which("sleep") is None, reason="no sleep(1) here")


def children_of_this_process() -> list[int]:
    """Live (not zombie) processes whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_until(condition: object, limit_s: float = 10.0) -> None:
    end = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, "condition never held"
        time.sleep(0.01)


@needs_sleep
def test_a_child_is_killed_and_reaped_at_its_time_out() -> None:
    child = run_child(["sleep", "30"], 0.2)
    assert child.timed_out and child.status == -1
    assert running_children() == 0 and children_of_this_process() == []


@needs_sleep
def test_an_interrupted_pool_kills_its_children_and_cancels_queued_runs() -> None:
    with pytest.raises(KeyboardInterrupt), ChildPool(2) as pool:
        futures = [pool.submit(run_child, ["sleep", "30"], 60) for _ in range(4)]
        wait_until(lambda: running_children() == 2)
        raise KeyboardInterrupt
    assert running_children() == 0 and children_of_this_process() == []
    assert [f.result().status for f in futures[:2]] == [-9, -9]  # SIGKILLed, not timed out
    assert all(f.cancelled() for f in futures[2:])
    assert run_child(["true"], 5).status == 0  # the pool wound down: children may start again


@needs_sleep
def test_no_child_starts_while_children_are_being_stopped() -> None:
    emulator.stop_children()
    try:
        with pytest.raises(emulator.ChildrenStopped):
            run_child(["sleep", "30"], 60)
    finally:
        emulator.allow_children()
    assert children_of_this_process() == []


def test_the_temporary_directory_goes_on_every_path(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with emulator.temp_dir("apiclab-test-") as made:
        (made / "file").write_text("x")
    with pytest.raises(KeyboardInterrupt), emulator.temp_dir("apiclab-test-") as made:
        (made / "file").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@needs_sleep
def test_a_child_whose_work_is_done_but_does_not_exit_is_killed_after_the_grace(
        tmp_path: Path) -> None:
    """QEMU sometimes finishes every case of a batch and never exits: once `done` says the work
    is complete, the child gets DONE_GRACE_S and is then killed, long before the time-out."""
    marker = tmp_path / "finished"
    argv = ["sh", "-c", f"echo working; sleep 0.2; touch {marker}; exec sleep 60"]
    child = run_child(argv, 60.0, done=marker.exists)
    assert not child.timed_out and child.status == -1  # killed, and not by the time-out
    assert child.stdout == b"working\n"
    assert children_of_this_process() == []


@needs_sleep
def test_a_child_that_exits_after_its_work_keeps_its_status(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    argv = ["sh", "-c", f"touch {marker}; sleep 0.1; exit 3"]
    child = run_child(argv, 30.0, done=marker.exists)
    assert (child.status, child.timed_out) == (3, False)


@needs_sleep
def test_done_never_holding_still_times_out() -> None:
    child = run_child(["sleep", "60"], 0.3, done=lambda: False)
    assert child.timed_out and child.status == -1
