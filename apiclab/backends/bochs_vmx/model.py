"""The same cases on the model: `apiclab.arch.vmx.VirtualApic` driven as the probe's guest runs.

Only the order of operations is here (the guest program of `vmx_probe.S`); every rule is
`arch.vmx`'s: VM entry (PPR virtualization, evaluation), delivery whenever `can_deliver(True)`
(the guest runs with RFLAGS.IF = 1 after its STI), EOI virtualization for each EOI write.
"""

from __future__ import annotations

from apiclab.arch.lapic import LocalApic
from apiclab.arch.vmx import VirtualApic
from apiclab.backends.bochs_vmx.cases import VmxCase
from apiclab.backends.bochs_vmx.result import EXIT_VMCALL, VmxOutcome


def _bit(vector: int) -> int:
    return 1 << vector if vector else 0


def initial_state(case: VmxCase) -> VirtualApic:
    """The virtual-APIC page and guest interrupt status the hypervisor writes before VMLAUNCH."""
    page = LocalApic()
    page.tpr = case.vtpr
    page.irr = _bit(case.virr_vector)
    page.isr = _bit(case.visr_vector)
    vapic = VirtualApic(page)
    vapic.rvi, vapic.svi = case.rvi, case.svi
    return vapic


def predict(case: VmxCase) -> VmxOutcome:
    """Run the probe's guest on the model and return the state it predicts at the VMCALL exit."""
    vapic = initial_state(case)
    delivered: list[int] = []

    def interrupt_window() -> None:
        # the guest loops with IF = 1; its handler IRETs without an EOI, and a delivery does not
        # re-evaluate (§29.2.2), so at most one vector per recognition
        while vapic.can_deliver(True):
            delivered.append(vapic.deliver())

    vapic.vm_entry()
    interrupt_window()
    for _ in range(case.eois):
        vapic.eoi_virtualization()
        interrupt_window()
    return VmxOutcome(
        delivered=tuple(delivered),
        rvi=vapic.rvi,
        svi=vapic.svi,
        vppr=vapic.vppr,
        vtpr=vapic.page.tpr,
        visr=vapic.page.isr,
        virr=vapic.page.irr,
        exit_reason=EXIT_VMCALL,
    )
