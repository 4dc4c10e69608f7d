"""Which local APICs an IPI reaches (SDM vol. 3A §10.6.2, x2APIC §10.12.9/§10.12.10).

The sender's ICR names its destination by a shorthand (§10.6.1: self, all including self, all
excluding self) or, with no shorthand, by a destination field read in physical or logical mode.
Every APIC on the bus compares the message with its own ID registers; this module is that
comparison, kept apart from delivery so each rule cites its section.
"""

from __future__ import annotations

from collections.abc import Sequence

from apiclab.arch.lapic import (
    DELIVERY_LOWEST,
    SHORTHAND_ALL,
    SHORTHAND_ALL_BUT_SELF,
    SHORTHAND_NONE,
    SHORTHAND_SELF,
    Icr,
    LocalApic,
)

DFR_FLAT, DFR_CLUSTER = 0xF, 0x0  # DFR[31:28] (§10.6.2.2)


def addressed(apic: LocalApic, icr: Icr) -> bool:
    """Whether `apic` recognises itself in the destination field of an IPI with no shorthand."""
    destination = icr.destination
    if apic.x2apic:
        if destination == 0xFFFFFFFF:
            return True  # §10.12.9: broadcast in both physical and logical mode
        if not icr.logical:
            return destination == apic.apic_id  # §10.6.2.1 with a 32-bit ID
        # §10.12.10.2: x2APIC logical mode is always cluster mode; [31:16] names the cluster and
        # [15:0] a bit mask of the logical IDs within it
        ldr = apic.x2apic_ldr()
        return destination >> 16 == ldr >> 16 and bool(destination & ldr & 0xFFFF)
    destination &= 0xFF
    if destination == 0xFF:
        return True  # §10.6.2.1 / §10.6.2.2: 0xFF is the broadcast in both modes
    if not icr.logical:
        return destination == apic.apic_id & 0xFF  # §10.6.2.1: physical, the 8-bit APIC ID
    logical_id = apic.ldr >> 24
    if apic.dfr >> 28 == DFR_FLAT:
        # §10.6.2.2 flat model: the MDA is a bit mask; an APIC is selected if its LDR's bit is set
        return bool(destination & logical_id)
    # §10.6.2.2 cluster model: MDA[7:4] the cluster (0xF = all clusters), MDA[3:0] a mask
    cluster = destination >> 4
    return (cluster in (logical_id >> 4, 0xF)) and bool(destination & logical_id & 0xF)


def destinations(sender: int, icr: Icr, apics: Sequence[LocalApic]) -> list[int]:
    """The indices of `apics` an IPI sent by `apics[sender]` reaches, before lowest-priority
    arbitration (§10.6.1 destination shorthand, §10.6.2 destination field)."""
    if icr.shorthand == SHORTHAND_SELF:
        return [sender]
    if icr.shorthand == SHORTHAND_ALL:
        return list(range(len(apics)))
    if icr.shorthand == SHORTHAND_ALL_BUT_SELF:
        return [i for i in range(len(apics)) if i != sender]
    assert icr.shorthand == SHORTHAND_NONE
    return [i for i, apic in enumerate(apics) if addressed(apic, icr)]


def lowest_priority(targets: Sequence[int], apics: Sequence[LocalApic]) -> list[int]:
    """§10.6.2.4: a lowest-priority IPI goes to one processor among its destinations, the one
    with the lowest priority; the SDM leaves how that is found to the implementation (P6 compares
    arbitration priority; Pentium 4 and Xeon leave it to the chipset, which may use the TPR).
    The model takes the lowest TPR, the lowest index among equals: one target, as the SDM asks."""
    if not targets:
        return []
    return [min(targets, key=lambda i: (apics[i].tpr, i))]


def is_lowest_priority(icr: Icr) -> bool:
    return icr.delivery_mode == DELIVERY_LOWEST
