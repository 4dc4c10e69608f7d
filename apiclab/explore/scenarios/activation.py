"""The `apicv-activation` family: APICv inhibited at first, activated at run time while a guest
handler may be running — what b2849bec936b ("KVM: VMX: Update SVI during runtime APICv
activation", KVM fixes for 6.19-rc1) is about.

KVM inhibits APICv for a while for many reasons (an APIC ID or base change, PIT reinjection, a
Hyper-V SynIC with auto-EOI, ...; which one does not matter here) and injects interrupts by event
injection meanwhile, so an acknowledged vector sits in the ISR of KVM's page. When the inhibit is
cleared, SVI must follow that ISR, because EOI virtualization clears VISR[SVI].

Draws, in order (zero is the simplest):
1. the vector the guest is handling when APICv is activated: none, or one of the device vectors,
   the clock 0xD1 or the IPI 0xE1;
2. when the activation happens: after the handler's EOI, or inside the handler, before its EOI.
The run then lasts 2 s with nothing else happening, so a vector whose EOI was lost stays in
service (`no-stuck-in-service` judges it).
"""

from __future__ import annotations

from apiclab.arch.registers import Reg
from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.trace import Trace
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import Profile

NAME = "apicv-activation"
SUMMARY = "APICv inhibited, then activated at run time while a handler may be running"
TSC_HZ = 2_600_000_000
VECTORS = (0x51, 0x61, 0x71, 0x81, 0x91, 0xA1, 0xB1, 0xD1, 0xE1)
WHEN = ("after the handler's EOI", "inside the handler, before its EOI")
RUN_NS = 2_000_000_000


def run(profile: Profile, apicv: bool, choices: Choices) -> Trace:
    trace = Trace()
    machine = ModelVm(profile, apicv=apicv, tsc_hz=TSC_HZ, trace=trace)
    vcpu, engine = machine.vcpu, machine.engine
    pick = choices.below(len(VECTORS) + 1)  # 0: nothing in service at the activation
    inside = choices.below(len(WHEN)) == 1
    vector = VECTORS[pick - 1] if pick else 0
    if vector:
        trace.record(0, ev.Choice, text=f"vector {vector:#04x} is handled; APICv activated {WHEN[inside]}")
    else:
        trace.record(0, ev.Choice, text="APICv activated with nothing in service")

    vcpu.vm_entry()
    vcpu.apic_write(Reg.SVR, 0x1FF)
    vcpu.apic_write(Reg.TPR, 0)
    if apicv:
        vcpu.set_apicv(False)  # an inhibit is set: interrupts go by event injection

    def handler(v: int) -> None:
        trace.record(engine.now, ev.GuestNote, text=f"handler for {v:#04x}")
        if inside and apicv:
            vcpu.set_apicv(True)
        vcpu.apic_write(Reg.EOI, 0)

    vcpu.idt = handler
    vcpu.sti()
    if vector:
        vcpu.accept_irq(vector, source="device")
    if apicv:
        vcpu.set_apicv(True)  # no-op if the handler already activated it
    trace.record(RUN_NS, ev.End, **vcpu.registers())
    return trace
