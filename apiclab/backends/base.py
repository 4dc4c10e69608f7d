"""What every executor of guest programs offers: the model, real KVM, QEMU and Bochs alike.

A backend runs one `Program` and returns a `RunResult` whose trace holds the guest-visible events
(`apiclab.engine.trace.GUEST_VISIBLE`) in the shared observation format, so any two backends can
be compared event by event (docs/design.md, invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from apiclab.arch.lapic_state import LapicState
from apiclab.engine.trace import Trace
from apiclab.guest.program import Program


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (program not installed, no /dev/kvm, ...); the message says why."""


@dataclass
class RunResult:
    """One run of a program on one backend."""

    trace: Trace
    lapic: LapicState | None = None  # host-side read-back at the end, where the backend can
    timed_out: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)  # tracepoints, raw logs, versions


@dataclass(frozen=True)
class Availability:
    available: bool
    detail: str  # version string when available, else the reason it is not


class Backend(Protocol):
    name: str

    def availability(self) -> Availability: ...

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult: ...
