"""What the QEMU and Bochs backends do alike around one emulator process.

Both find the emulator and ask it its version once, write the program's agent ROM into a fresh
temporary directory, and run the emulator as a child process that is killed and reaped when the
time-out expires or the run is interrupted; the directory is removed however the run ends.
`ChildPool` runs many of them at once and, interrupted, kills them all and winds down at once. What differs (the command line,
where the agent's port-0xE9 records land, how a run is judged finished) stays in each backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from apiclab.backends.base import Availability, BackendUnavailable
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import Program
from apiclab.interrupts import deferred

T = TypeVar("T")
# how long an interrupted pool waits for its runs to unwind once their emulators are killed
WIND_DOWN_S = 0.5
PROBE_TIMEOUT_S = 10.0


def probe(program: str, flag: str, install: str) -> subprocess.CompletedProcess[str]:
    """`program flag` run once, e.g. `qemu-system-x86_64 --version`; BackendUnavailable when the
    program is not on PATH (`install` says which Debian packages bring it) or does not answer."""
    path = shutil.which(program)
    if path is None:
        raise BackendUnavailable(f"{program} is not installed ({install})")
    try:
        child = run_child([path, flag], PROBE_TIMEOUT_S)
    except OSError as e:
        raise BackendUnavailable(f"{program} {flag} failed: {e}") from None
    if child.timed_out:
        raise BackendUnavailable(f"{program} {flag} did not answer in {PROBE_TIMEOUT_S:g} s")
    return subprocess.CompletedProcess([path, flag], child.status,
                                       child.stdout.decode(errors="replace"), child.stderr)


def availability(version: Callable[[], str], what: str) -> Availability:
    """Available as `version()` followed by `what`, or unavailable with the reason it raised."""
    try:
        return Availability(True, version() + what)
    except BackendUnavailable as e:
        return Availability(False, str(e))


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under tempfile's directory (TMPDIR), removed when the block ends, by
    an exception or a signal too: making it and removing it are not cut short by SIGINT/SIGTERM
    (apiclab.interrupts.deferred), so no half-made or half-removed directory is left behind."""
    with deferred():
        path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        with deferred():
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def agent_rom(program: Program, emulator: str, *, relay: bool = False) -> Iterator[Path]:
    """The program's agent ROM as `agent.rom` in a temporary directory of its own, where the
    emulator's other files can go too; the directory is removed when the block ends, also when it
    ends by an exception. The image is built first, so a bad program creates no directory.
    `relay`: the other CPUs' logs come through port 0xE9 (image.build_image)."""
    rom_bytes = build_image(program, relay=relay)
    with temp_dir(f"apiclab-{emulator}-") as tmp:
        rom = tmp / "agent.rom"
        rom.write_bytes(rom_bytes)
        yield rom


@dataclass(frozen=True)
class ChildExit:
    """How one emulator process ended."""

    stdout: bytes  # all it wrote, or what it had written when it was killed
    status: int  # its exit status, -1 when it was killed (at the time-out, or after `done`)
    stderr: str  # "" when it was killed at the time-out
    timed_out: bool


class ChildrenStopped(RuntimeError):
    """The run is being interrupted (`stop_children`): no new emulator process is started."""


class _Children:
    """Every emulator process running now, so that an interruption can kill them all at once
    from the main thread while pool threads wait on them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen[bytes]] = set()
        # work in progress that starts no child but must end at once too (a KVM_RUN): how to stop
        # each one (`stoppable`)
        self.stoppers: set[Callable[[], None]] = set()
        self.stopping = False


_children = _Children()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads one of its own), ignoring one gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_child(
    argv: list[str],
    timeout_s: float,
    *,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    done: Callable[[], bool] | None = None,
) -> ChildExit:
    """Run `argv` to its end, feeding it `stdin` (or /dev/null), for at most `timeout_s` seconds.
    With `done`, asked every `DONE_POLL_S`: once it says the child's work is complete, the child
    has `DONE_GRACE_S` to exit on its own and is killed after that (status -1, not a time-out).

    The child leads a process group of its own (so a terminal's Ctrl-C reaches apiclab only, and
    anything the emulator forks dies with it); it is killed and reaped at the time-out, when this
    thread is interrupted, and by `stop_children` from another thread. Raises ChildrenStopped
    once `stop_children` has been called."""
    with deferred(), _children.lock:  # started and recorded as one step
        if _children.stopping:
            raise ChildrenStopped("interrupted: no new emulator is started")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                process_group=0)
        _children.running.add(proc)
    try:
        try:
            if done is None:
                out, err = proc.communicate(stdin, timeout=timeout_s)
            else:
                out, err = _communicate_until(proc, stdin, timeout_s, done)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate()  # what it wrote before the kill; the pipes close with it
            return ChildExit(out, -1, "", True)
        except _Done:
            _kill(proc)
            out, err = proc.communicate()
            return ChildExit(out, -1, err.decode(errors="replace"), False)
        return ChildExit(out, proc.returncode, err.decode(errors="replace"), False)
    finally:
        with deferred():  # killed and reaped even when this thread is being interrupted
            if proc.returncode is None:
                _kill(proc)
                proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            with _children.lock:
                _children.running.discard(proc)


DONE_POLL_S = 0.05  # how often `run_child` asks its `done`
DONE_GRACE_S = 0.5  # how long a child whose work is done may take to exit before it is killed


class _Done(Exception):
    """The child's work is complete but it has not exited within `DONE_GRACE_S`."""


def _communicate_until(proc: subprocess.Popen[bytes], stdin: bytes | None, timeout_s: float,
                       done: Callable[[], bool]) -> tuple[bytes, bytes]:
    """`proc.communicate` for at most `timeout_s`, in slices of `DONE_POLL_S`; raises _Done once
    `done()` holds and the child is still running `DONE_GRACE_S` later. (QEMU, seen here: a batch
    whose every case finished sometimes never exits, where it should at the agent's write to
    isa-debug-exit.)"""
    deadline = time.monotonic() + timeout_s
    first = True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout_s)
        try:
            out, err = proc.communicate(stdin if first else None, timeout=min(DONE_POLL_S, left))
            return out, err
        except subprocess.TimeoutExpired:
            first = False
        if done():
            try:
                out, err = proc.communicate(timeout=min(DONE_GRACE_S, max(left, 0.0)))
                return out, err
            except subprocess.TimeoutExpired:
                raise _Done() from None


def stop_children() -> None:
    """Kill every running emulator, stop every `stoppable` work, and refuse new ones (the run is
    being interrupted). The threads waiting on them see their child end at once and reap it
    themselves."""
    with _children.lock:
        _children.stopping = True
        for proc in _children.running:
            _kill(proc)
        for stop in _children.stoppers:
            stop()


@contextmanager
def stoppable(stop: Callable[[], None]) -> Iterator[None]:
    """While the block runs, an interruption (`stop_children`, from another thread) calls `stop`,
    which must make the block end soon (a KVM run: kick its vCPU out of KVM_RUN). Called at once
    if the run is being interrupted already."""
    with _children.lock:
        _children.stoppers.add(stop)
        if _children.stopping:
            stop()
    try:
        yield
    finally:
        with _children.lock:
            _children.stoppers.discard(stop)


def children_stopping() -> bool:
    """Whether the run is being interrupted: work that starts no emulator (a KVM VM, say) ends
    too, between two of its runs."""
    with _children.lock:
        return _children.stopping


def allow_children() -> None:
    """Undo `stop_children` once every thread that could start a child has ended."""
    with _children.lock:
        _children.stopping = False


def running_children() -> int:
    """How many emulator processes are running now."""
    with _children.lock:
        return len(_children.running)


class ChildPool(ThreadPoolExecutor):
    """A thread pool for runs that wait on emulator processes, which winds down at once when the
    block that owns it is interrupted: the emulators are killed, queued runs cancelled, and the
    running ones are given up to `wind_down_s` to unwind (remove their temporary directories)
    instead of being awaited to their time-outs.

        with ChildPool(4) as pool:
            future = pool.submit(run, ...)
            pool.result(future)
    """

    def __init__(self, max_workers: int, wind_down_s: float = WIND_DOWN_S) -> None:
        super().__init__(max_workers=max_workers)
        self.wind_down_s = wind_down_s
        self._futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future = super().submit(fn, *args, **kwargs)
        self._futures.append(future)
        return future

    @staticmethod
    def result(future: Future[T]) -> T:
        """`future.result()`, waited for in short slices so that the main thread runs its signal
        handlers even when the signal was delivered to a pool thread."""
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                continue

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        if e is None:
            try:
                return super().__exit__(t, e, tb)
            except BaseException:  # interrupted while joining the (idle) threads
                self._wind_down()
                raise
        self._wind_down()
        return None

    def _wind_down(self) -> None:
        with deferred():
            stop_children()
            self.shutdown(wait=False, cancel_futures=True)
            running = [f for f in self._futures if not f.done()]
            _, late = wait(running, timeout=self.wind_down_s)
            if not late:
                allow_children()
