"""Capture KVM tracepoints of a run through tracefs, in a private instance that is always removed.

Documentation/trace/ftrace.rst, "Instances": `mkdir instances/NAME` makes a trace buffer of its own
with its own event switches, so enabling events there leaves the global buffer (and anyone else's
tracing) alone; `rmdir` removes it. tracefs is mounted at /sys/kernel/tracing first if it is not.
The instance is removed however the run ends (see `TraceCapture`); one left by a process that
was killed outright (SIGKILL) is removed by the next capture of any apiclab process.
The kvm events are global to the host, so events of another VM running at the same time would be
captured too; each event carries the task that hit it (`pid`), and `own` marks our process.

    with TraceCapture() as capture:
        ... run the guest ...
    capture.events     # [TraceEvent(...), ...]
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import errno
import itertools
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from apiclab.interrupts import deferred

TRACEFS = Path("/sys/kernel/tracing")
DEFAULT_EVENTS = (
    "kvm_apic_accept_irq",  # an interrupt reaches the local APIC's IRR (lapic.c __apic_accept_irq)
    "kvm_inj_virq",  # KVM injects a vector into the guest
    "kvm_eoi",  # an EOI is processed (lapic.c apic_set_eoi)
    "kvm_pv_eoi",
    "kvm_apic",  # APIC register reads and writes KVM emulates
    "kvm_msr",  # RDMSR/WRMSR KVM handles (x2APIC registers, TSC deadline)
    "kvm_apicv_accept_irq",
    "kvm_set_irq",  # a GSI changes level (irq_comm.c kvm_set_irq): the in-kernel PIT's IRQ0
    "kvm_ioapic_set_irq",  # the IOAPIC sends an entry's interrupt (ioapic.c ioapic_service)
    "kvm_ack_irq",  # an EOI reaches the IOAPIC's ack notifiers (remote IRR cleared)
)
# KVM's in-kernel PIT fires from a kernel worker named after the VMM's pid (i8254.c
# kvm_create_pit: "kvm-pit/%d"); its events belong to our VM, so they count as ours.
_PIT_WORKER = "kvm-pit/{pid}"
_LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+"
    r"(?P<event>\w+):\s?(?P<msg>.*)$"
)
_counter = itertools.count()
PREFIX = "apiclab-"  # instances are named apiclab-<pid>-<n>
_INSTANCE = re.compile(r"apiclab-(?P<pid>\d+)-\d+")
RMDIR_ATTEMPTS = 10


class TraceUnavailable(RuntimeError):
    """tracefs cannot be used here (not root, no kvm events); the message says why."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    time_s: float  # the trace clock (local, seconds)
    event: str
    message: str
    pid: int
    comm: str
    own: bool  # hit by this process's threads

    def as_dict(self) -> dict[str, object]:
        return {"time_s": self.time_s, "event": self.event, "message": self.message,
                "pid": self.pid, "comm": self.comm, "own": self.own}


def ensure_mounted(root: Path = TRACEFS) -> None:
    """Mount tracefs at `root` unless its event directory is already there."""
    if (root / "events").is_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", str(root).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise TraceUnavailable(f"cannot mount tracefs at {root}: {os.strerror(err)}")


def parse(text: str, own_pids: set[int]) -> list[TraceEvent]:
    """The events of a tracefs `trace` file (comment lines skipped)."""
    events = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            pid, comm = int(m["pid"]), m["comm"].strip()
            own = pid in own_pids or comm == _PIT_WORKER.format(pid=os.getpid())
            events.append(TraceEvent(float(m["ts"]), m["event"], m["msg"].strip(), pid, comm,
                                     own))
    return events


def own_thread(events: list[TraceEvent]) -> list[TraceEvent]:
    """`events` with `own` kept for this thread's and this process's PIT worker's only (a
    process running VMs in several threads at once, each thread its VM's vCPU)."""
    me, pit = threading.get_native_id(), _PIT_WORKER.format(pid=os.getpid())
    return [e if e.own == (e.pid == me or e.comm == pit) else
            dataclasses.replace(e, own=e.pid == me or e.comm == pit) for e in events]


def _own_pids() -> set[int]:
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{os.getpid()}/task")}
    except OSError:
        return {os.getpid()}


class TraceCapture:
    """A private tracefs instance recording `events` between `__enter__` and `__exit__`.

    The instance is removed on every way out (normal end, error, SIGINT/SIGTERM raised as an
    exception): recording stops first, then `rmdir`, retried while the kernel answers EBUSY.
    One the kernel still refuses is left stopped and retried when the process exits; instances
    of processes that died without removing theirs are removed by the next capture."""

    def __init__(self, events: tuple[str, ...] = DEFAULT_EVENTS, root: Path = TRACEFS,
                 buffer_kb: int = 2048) -> None:
        self.root = root
        self.names = events
        self.buffer_kb = buffer_kb
        self.instance = root / "instances" / f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.events: list[TraceEvent] = []
        self.enabled: list[str] = []
        self._pipe: int | None = None  # trace_pipe, open from the first `clear` or `read`

    def __enter__(self) -> TraceCapture:
        ensure_mounted(self.root)
        if not (self.root / "events" / "kvm").is_dir():
            raise TraceUnavailable(f"no kvm tracepoints under {self.root / 'events'}")
        remove_orphans(self.root)
        try:
            with deferred():  # made and owned as one step: a signal cannot fall between
                self.instance.mkdir()
                _live.add(self.instance)
        except OSError as e:
            raise TraceUnavailable(f"cannot create {self.instance}: {e.strerror}") from None
        try:
            (self.instance / "buffer_size_kb").write_text(str(self.buffer_kb))
            for name in self.names:
                switch = self.instance / "events" / "kvm" / name / "enable"
                if switch.exists():
                    switch.write_text("1")
                    self.enabled.append(name)
            (self.instance / "tracing_on").write_text("1")
        except BaseException:
            with deferred():
                remove_instance(self.instance)
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._close_pipe()  # an open file of the instance would make its rmdir fail
            stop(self.instance)
            if e is None:  # an interrupted run's events are not wanted; its clean-up is
                self.events = parse((self.instance / "trace").read_text(), _own_pids())
        finally:
            with deferred():
                remove_instance(self.instance)


    def clear(self) -> None:
        """Drop what the instance recorded so far, so that one capture serves many runs in turn
        (making and removing an instance costs tens of milliseconds here): the events are
        consumed from `trace_pipe` (Documentation/trace/ftrace.rst, "trace_pipe": a read takes
        the events out of the ring buffer) without waiting for more. Opening `trace` with O_TRUNC
        would clear it too, but resets the ring buffer, which costs ~13 ms here."""
        self._consume()

    def read(self) -> list[TraceEvent]:
        """The events recorded since the start or the last `clear` or `read` (they are consumed);
        recording goes on."""
        return parse(self._consume().decode("utf-8", "replace"), _own_pids())

    def _consume(self) -> bytes:
        if self._pipe is None:
            self._pipe = os.open(self.instance / "trace_pipe",
                                 os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        chunks = []
        while True:
            try:
                chunk = os.read(self._pipe, 1 << 16)
            except BlockingIOError:  # nothing more recorded
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            os.close(pipe)


# instances this process made and has not removed yet (removed at exit if rmdir kept failing)
_live: set[Path] = set()


def stop(instance: Path) -> None:
    """Stop recording into `instance`: its ring buffer off, then every event switch off (the
    instance's events/enable clears them all)."""
    for switch in ("tracing_on", "events/enable"):
        with contextlib.suppress(OSError):
            (instance / switch).write_text("0")


def remove_instance(instance: Path, *, attempts: int = RMDIR_ATTEMPTS) -> bool:
    """Stop and remove `instance`; True when it is gone.

    The kernel refuses the rmdir with EBUSY while anything holds a file of the instance open
    (kernel/trace/trace.c __remove_instance: tr->ref > 1), which includes the moment between
    fork and exec of a child started by another thread of this process, which inherits our
    descriptors until exec closes them (O_CLOEXEC). So EBUSY is retried, with a back-off of a
    few milliseconds up to about a quarter of a second in all."""
    stop(instance)
    delay = 0.002
    for attempt in range(attempts):
        try:
            instance.rmdir()
        except FileNotFoundError:
            break
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == attempts - 1:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        break
    _live.discard(instance)
    return True


def remove_orphans(root: Path = TRACEFS) -> list[str]:
    """Remove the instances of apiclab processes that are gone (killed before they could remove
    theirs); returns their names. An instance whose pid is alive is kept unless that process
    started after the instance was made (the pid was reused)."""
    try:
        names = os.listdir(root / "instances")
    except OSError:
        return []
    removed = []
    for name in names:
        m = _INSTANCE.fullmatch(name)
        if not m or int(m["pid"]) == os.getpid():
            continue
        path = root / "instances" / name
        try:
            made = path.stat().st_mtime
        except OSError:
            continue
        if not _alive_since(int(m["pid"]), made) and remove_instance(path, attempts=3):
            removed.append(name)
    return removed


def _alive_since(pid: int, made: float) -> bool:
    """Whether process `pid` exists and was already running at time `made` (epoch seconds):
    /proc/PID/stat field 22 is its start in clock ticks after boot (proc(5)), /proc/stat's
    btime the boot in epoch seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return Path(f"/proc/{pid}").exists()
    if made < boot:
        return True  # no usable creation time: keep the instance of a live pid
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return started <= made + 1.0  # btime has a resolution of one second


@atexit.register
def _remove_left() -> None:
    for instance in list(_live):
        remove_instance(instance)
