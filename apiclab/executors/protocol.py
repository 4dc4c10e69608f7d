"""The executor protocol: what the model, KVM, QEMU, Bochs and Bochs-VMX offer alike.

An executor has a `name`, says whether it can run a case here (`can_run` gives the reason it
cannot, which reports show as "not run: <reason>", never as a failure), and runs a case to its
outcome. For step-list guest programs (`apiclab.executors.case.Case`) the outcome is a
`RunResult`: the typed trace (`apiclab.engine.events`), the host's read-back of the APIC, whether
it timed out, raw evidence. Bochs-VMX runs a different kind of case (a virtual-APIC state at VM
entry, `VmxCase`) to the typed `VmExit` event that ends it; the model runs both kinds. Outcomes compare through
`apiclab.executors.compare.first_difference`.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from apiclab.backends.base import RunResult
from apiclab.executors.case import Case

C_contra = TypeVar("C_contra", contravariant=True)
O_co = TypeVar("O_co", covariant=True)

DEFAULT_TIMEOUT_S = 5.0


class Executor(Protocol[C_contra, O_co]):
    """Runs cases of type C to outcomes of type O."""

    @property
    def name(self) -> str: ...

    def can_run(self, case: C_contra) -> str | None:
        """None when `case` can run here; else the reason it cannot (one line)."""

    def run(self, case: C_contra, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> O_co:
        """Run `case`; raises BackendUnavailable where `can_run` would have said why."""


# The executors of guest programs: the model, KVM, QEMU and Bochs.
ProgramExecutor = Executor[Case, RunResult]
