"""A pulse on the local APIC's LINT1 pin, as the LVT LINT1 entry decides (SDM vol. 3A,
325384-059US, §10.5.1 "Local Vector Table", Figure 10-8).

On a PC the platform's NMI source is wired to LINT1, and system software programs LVT LINT1 with
delivery mode NMI; a pulse is an edge (the pin asserted, then deasserted). What the APIC makes of
it is the entry's mask bit and delivery mode:

- mask bit set: "inhibits reception of the interrupt" — the pulse is dropped, and nothing is held
  for an unmask later (an edge is not a level that is still there);
- NMI (100b): an NMI to the processor; "the vector information is ignored", and the trigger mode
  is always edge;
- Fixed (000b): the entry's vector, as an interrupt through IRR/ISR like any fixed one. LINT1 is
  edge-triggered here: "Level-sensitive interrupts are not supported for LINT1" and software
  "should always set the trigger mode in the LVT LINT1 register to 0", so an entry with the level
  bit set is left unsupported (the SDM says nothing of what it does);
- SMI (010b), INIT (101b): an SMI or INIT to the processor core;
- ExtINT (111b): the processor answers as if the interrupt came from an external 8259A, which
  supplies the vector in an INTA cycle; the model has no 8259A (on a PC the 8259A drives LINT0,
  not LINT1), so it can only say so;
- 001b, 011b, 110b are reserved delivery modes for the LVT.

Whether the pin reaches the APIC at all (a globally disabled APIC, §10.4.3) is the machine's, not
this rule's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from apiclab.arch.lapic import (
    DELIVERY_EXTINT,
    DELIVERY_FIXED,
    DELIVERY_INIT,
    DELIVERY_NMI,
    DELIVERY_SMI,
    LVT_LEVEL_TRIGGERED,
    LVT_MASKED,
)


class Lint1Delivery(Enum):
    """What a LINT1 pulse becomes (§10.5.1)."""

    MASKED = "masked"  # dropped: the entry's mask bit inhibits reception
    NMI = "nmi"
    FIXED = "fixed"  # `vector`, edge-triggered
    SMI = "smi"
    INIT = "init"
    EXTINT = "extint"  # the vector would come from an external 8259A
    UNSUPPORTED = "unsupported"  # a reserved delivery mode, or Fixed with the level bit (LINT1)


@dataclass(frozen=True, slots=True)
class Lint1Pulse:
    """The decision for one pulse: how it is delivered, and the vector where it has one."""

    delivery: Lint1Delivery
    vector: int  # the entry's vector field (meaningful for FIXED only)


_BY_MODE = {
    DELIVERY_FIXED: Lint1Delivery.FIXED,
    DELIVERY_SMI: Lint1Delivery.SMI,
    DELIVERY_NMI: Lint1Delivery.NMI,
    DELIVERY_INIT: Lint1Delivery.INIT,
    DELIVERY_EXTINT: Lint1Delivery.EXTINT,
}


def lint1_pulse(entry: int) -> Lint1Pulse:
    """What a pulse on LINT1 does under LVT LINT1 = `entry` (§10.5.1, module docstring)."""
    vector = entry & 0xFF
    if entry & LVT_MASKED:
        return Lint1Pulse(Lint1Delivery.MASKED, vector)
    delivery = _BY_MODE.get((entry >> 8) & 0b111, Lint1Delivery.UNSUPPORTED)
    if delivery is Lint1Delivery.FIXED and entry & LVT_LEVEL_TRIGGERED:
        delivery = Lint1Delivery.UNSUPPORTED  # "Level-sensitive interrupts are not supported"
    return Lint1Pulse(delivery, vector)
