"""Capture KVM tracepoints of a run through tracefs, in a private instance that is always removed.

Documentation/trace/ftrace.rst, "Instances": `mkdir instances/NAME` makes a trace buffer of its own
with its own event switches, so enabling events there leaves the global buffer (and anyone else's
tracing) alone; `rmdir` removes it. tracefs is mounted at /sys/kernel/tracing first if it is not.
The kvm events are global to the host, so events of another VM running at the same time would be
captured too; each event carries the task that hit it (`pid`), and `own` marks our process.

    with TraceCapture() as capture:
        ... run the guest ...
    capture.events     # [TraceEvent(...), ...]
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

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


def _own_pids() -> set[int]:
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{os.getpid()}/task")}
    except OSError:
        return {os.getpid()}


class TraceCapture:
    """A private tracefs instance recording `events` between `__enter__` and `__exit__`."""

    def __init__(self, events: tuple[str, ...] = DEFAULT_EVENTS, root: Path = TRACEFS,
                 buffer_kb: int = 2048) -> None:
        self.root = root
        self.names = events
        self.buffer_kb = buffer_kb
        self.instance = root / "instances" / f"apiclab-{os.getpid()}-{next(_counter)}"
        self.events: list[TraceEvent] = []
        self.enabled: list[str] = []

    def __enter__(self) -> TraceCapture:
        ensure_mounted(self.root)
        if not (self.root / "events" / "kvm").is_dir():
            raise TraceUnavailable(f"no kvm tracepoints under {self.root / 'events'}")
        try:
            self.instance.mkdir()
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
            self._remove()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            (self.instance / "tracing_on").write_text("0")
            self.events = parse((self.instance / "trace").read_text(), _own_pids())
        finally:
            self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(OSError):
            (self.instance / "events" / "enable").write_text("0")
        with contextlib.suppress(FileNotFoundError):
            self.instance.rmdir()
