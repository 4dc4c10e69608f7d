"""Stand-in backends for the tests (conform, executors): `tests` is on pytest's path."""

from __future__ import annotations

from apiclab.backends.base import Availability, RunResult
from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.guest.program import Program


class Silent:
    """A backend whose guest reports only the end, so it differs from the model on every case
    and every random program with an event; `name` is the backend it stands in for."""

    def __init__(self, name: str = "silent") -> None:
        self.name = name

    def availability(self) -> Availability:
        return Availability(True, "silent 1.0")

    def run(self, program: Program, *, lapic_image: object = None,
            timeout_s: float = 5.0) -> RunResult:
        trace = Trace()
        trace.record(0, evt.End)
        return RunResult(trace)
