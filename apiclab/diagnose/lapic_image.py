"""A `kvm_lapic_state` image (KVM_GET_LAPIC's 1 KiB register page) as evidence.

Decoded with the project's one codec (`apiclab.arch.lapic_state`); the layout is the xAPIC page of
SDM §10.4.1 Table 10-1. The page carries no RFLAGS and, under APICv, no RVI/SVI/PIR (they live in
the VMCS and the posted-interrupt descriptor), which the notes say.
"""

from __future__ import annotations

from apiclab.arch.lapic_state import LAPIC_STATE_SIZE, LapicState, LapicStateError
from apiclab.arch.registers import LVT_REGS, Reg
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.evidence import CpuEvidence, Evidence

NOTES = (
    "a kvm_lapic_state image holds the register page only: RFLAGS.IF and the interrupt shadow "
    "are not in it",
    "under APICv, RVI, SVI and the posted-interrupt requests are outside the page (VMCS guest "
    "interrupt status, PI descriptor): a vector waiting there is invisible here",
)


def cpu_from_image(image: bytes, cpu: int, where: str) -> CpuEvidence:
    try:
        state = LapicState.decode(image)
    except LapicStateError as e:
        raise EvidenceError(f"{where}: {e}") from None
    ident = state.get(Reg.ID)
    return CpuEvidence(
        cpu=cpu,
        # xAPIC keeps the ID in bits 31:24; an x2APIC page keeps all 32 bits (api.rst,
        # KVM_X2APIC_API): the high byte is the xAPIC reading, the whole value otherwise.
        apic_id=ident >> 24 if ident & 0x00FFFFFF == 0 else ident,
        tpr=state.get(Reg.TPR) & 0xFF,
        isr=state.isr,
        irr=state.irr,
        tmr=state.tmr,
        svr=state.get(Reg.SVR),
        ppr_read=state.get(Reg.PPR) & 0xFF,
        lvt={int(r): state.get(r) for r in LVT_REGS},
        timer_initial=state.get(Reg.TIMER_INITIAL),
        timer_current=state.get(Reg.TIMER_CURRENT),
        timer_divide=state.get(Reg.TIMER_DIVIDE),
    )


def parse_images(images: list[tuple[str, bytes]]) -> Evidence:
    """One image per vCPU, in the order given."""
    cpus = []
    for i, (where, image) in enumerate(images):
        if len(image) != LAPIC_STATE_SIZE:
            raise EvidenceError(f"{where}: a kvm_lapic_state image is {LAPIC_STATE_SIZE} bytes, "
                                f"this one is {len(image)}")
        cpus.append(cpu_from_image(image, i, where))
    return Evidence("kvm_lapic_state", cpus, list(NOTES))
