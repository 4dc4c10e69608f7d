"""The model as an executor: step-list cases on a model VM, and VMX cases on `arch.vmx`.

`ModelExecutor` runs a `Case` as a real backend would (its image pushed with KVM_SET_LAPIC, a
wall-clock time-out), through `apiclab.hypervisor.program_run.run_program`. `VmxModelExecutor`
runs a Bochs-VMX probe case (`VmxCase`) on `apiclab.arch.vmx.VirtualApic`: only the order of
operations of the probe's guest is here (`backends/bochs_vmx/vmx_probe.S`); every rule is
`arch.vmx`'s: VM entry (PPR virtualization, evaluation), delivery whenever `can_deliver(True)`
(the guest runs with RFLAGS.IF = 1 after its STI), EOI virtualization for each EOI write.
"""

from __future__ import annotations

from importlib import metadata

from apiclab.arch.lapic import LocalApic
from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import Reg
from apiclab.arch.vectors import vectors_of
from apiclab.arch.vmx import VirtualApic
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.backends.bochs_vmx.cases import VmxCase
from apiclab.backends.bochs_vmx.result import EXIT_VMCALL, VmxOutcome
from apiclab.engine.events import ModelStopped
from apiclab.executors.case import Case
from apiclab.executors.protocol import DEFAULT_TIMEOUT_S
from apiclab.guest.program import Program

# The model's TSC rate for guest programs: the TSC budgets of the cases assume a few GHz, as on
# the machines the real backends run on.
MODEL_TSC_HZ = 3_000_000_000


def model_version() -> str:
    try:
        version = metadata.version("apiclab")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"apiclab model {version} (SDM 325384-059US)"


class ModelExecutor:
    """The executable SDM behind the executor protocol (and, for the suite's runner, behind the
    `Backend` protocol: `availability` and `run(program, lapic_image=...)`)."""

    name = "model"

    def availability(self) -> Availability:
        import apiclab.hypervisor.program_run  # noqa: F401  (loaded here, not in the first run)

        return Availability(True, model_version())

    def can_run(self, case: Case) -> str | None:
        return None  # the model runs every program, on any number of CPUs

    def run(self, case: Case | Program, *, lapic_image: LapicState | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
        """Run a case (or a bare program from `lapic_image`), bounded like a real backend: a
        step budget and the same wall-clock time-out."""
        from apiclab.hypervisor.program_run import (
            run_program,  # imported when first run: start-up stays fast
        )

        if isinstance(case, Case):
            program, lapic_image = case.program, case.image
        else:
            program = case
        trace = run_program(program, lapic_image=lapic_image, tsc_hz=MODEL_TSC_HZ,
                            timeout_s=timeout_s)
        stopped = [e.reason for e in trace.events if isinstance(e, ModelStopped)]
        evidence = {"stopped": stopped[0]} if stopped else {}
        return RunResult(trace=trace, timed_out=bool(stopped), evidence=evidence)


def _bit(vector: int) -> int:
    return 1 << vector if vector else 0


def vmx_page(case: VmxCase) -> LapicState:
    """The virtual-APIC page the probe's hypervisor writes before VMLAUNCH: VTPR, and the one
    VIRR/VISR bit of the case."""
    page = LapicState.zero()
    page.set(Reg.TPR, case.vtpr)
    page.irr, page.isr = _bit(case.virr_vector), _bit(case.visr_vector)
    return page


def vmx_initial_state(case: VmxCase) -> VirtualApic:
    """The virtual-APIC page (read into a `LocalApic` by `from_page`, §10.4.1's offsets) and the
    guest interrupt status RVI/SVI the hypervisor writes before VMLAUNCH."""
    vapic = VirtualApic(LocalApic.from_page(vmx_page(case), now=0))
    vapic.rvi, vapic.svi = case.rvi, case.svi
    return vapic


class VmxModelExecutor:
    """The probe's guest on the model: the outcome `arch.vmx` predicts at the VMCALL exit."""

    name = "model"

    def can_run(self, case: VmxCase) -> str | None:
        return None

    def run(self, case: VmxCase, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> VmxOutcome:
        vapic = vmx_initial_state(case)
        delivered: list[int] = []

        def interrupt_window() -> None:
            # the guest loops with IF = 1; its handler IRETs without an EOI, and a delivery does
            # not re-evaluate (§29.2.2), so at most one vector per recognition
            while vapic.can_deliver(True):
                delivered.append(vapic.deliver())

        vapic.vm_entry()
        interrupt_window()
        for _ in range(case.eois):
            vapic.eoi_virtualization()
            interrupt_window()
        page = vapic.page.to_page(now=0)
        return VmxOutcome(
            time=0,
            delivered=tuple(delivered),
            rvi=vapic.rvi,
            svi=vapic.svi,
            vppr=vapic.vppr,
            vtpr=page.get(Reg.TPR),
            isr=vectors_of(page.isr),
            irr=vectors_of(page.irr),
            exit_reason=EXIT_VMCALL,
        )


def predict(case: VmxCase) -> VmxOutcome:
    """The model's outcome for a Bochs-VMX probe case."""
    return VmxModelExecutor().run(case)


__all__ = ["MODEL_TSC_HZ", "BackendUnavailable", "ModelExecutor", "VmxModelExecutor", "predict",
           "vmx_initial_state", "vmx_page"]
