"""One notion of a case: a guest program, the APIC image it starts from, and what it must show.

The conformance suite's case files (`apiclab.conform.case`) and the `apiclab kvm reproduce`
cases (`apiclab.scenarios.kvm_cases`) are all `Case`s, and every executor
(`apiclab.executors.protocol.Executor`) runs one. A case whose `expect` is empty is judged
against the model's run of it (the model is the reference) rather than against an expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiclab.arch.lapic_state import LapicState
from apiclab.executors.expect import ExpectedEvent
from apiclab.guest.program import Program

# A run ends with one of these; an expectation that does not end with one implies "end".
TERMINAL_KINDS = frozenset({"end", "bugcheck", "fault"})


@dataclass(frozen=True)
class Case:
    """`program` runs from `image` (pushed with KVM_SET_LAPIC before the first instruction; None:
    the power-up state) on `program.cpus` CPUs; `expect` is the guest-visible events it must
    show, in order, and `absent` the vectors it must never deliver."""

    name: str
    sdm: str  # the SDM section the expectation rests on ("" where the model is the reference)
    description: str
    program: Program
    expect: tuple[ExpectedEvent, ...] = ()
    path: str = "<memory>"
    absent: frozenset[int] = frozenset()  # vectors never delivered in the whole run
    image: LapicState | None = None

    @property
    def cpus(self) -> int:
        return self.program.cpus

    def expected_events(self) -> tuple[ExpectedEvent, ...]:
        """The expectation with the implied final ``end`` event."""
        if self.expect and self.expect[-1].kind in TERMINAL_KINDS:
            return self.expect
        return (*self.expect, ExpectedEvent("end"))
