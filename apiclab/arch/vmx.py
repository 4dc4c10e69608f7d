"""VMX APIC virtualization: the virtual-APIC page, RVI/SVI and virtual-interrupt delivery.

SDM vol. 3C (325384-059US) chapter 29 "APIC Virtualization and Virtual Interrupts"; later editions
number it chapter 30. The guest interrupt status (§24.4.2 "Guest Non-Register State") is a 16-bit
VMCS field: RVI is its low byte, SVI its high byte. Neither is in the virtual-APIC page.

The page here is a `LocalApic`: KVM uses its software APIC's register page as the virtual-APIC
page, so VIRR, VISR and VTPR *are* that APIC's IRR, ISR and TPR. VPPR, unlike the physical APIC's
PPR, is stored state: the processor writes it only at PPR virtualization (§29.1.3), so it can be
stale — which is the point of modelling it.

Cross-checked against an independent implementation's source: Bochs' `cpu/vapic.cc`
(`VMX_Deliver_Virtual_Interrupt` takes the vector from RVI; `VMX_EOI_Virtualization` retires SVI;
`VMX_PPR_Virtualization` reads SVI). One divergence there: its posted-interrupt processing raises
RVI to the highest bit of the whole VIRR after the OR, where §29.6 says the highest PIR bit.
"""

from __future__ import annotations

from typing import Any, Final

from apiclab.arch.lapic import LocalApic
from apiclab.arch.vectors import highest, priority_class


class VirtualEoi:
    """Result of EOI virtualization (§29.1.4). (A plain class, as `apiclab.arch.lapic.EoiResult`.)"""

    __slots__ = ("eoi_exit", "vector")

    def __init__(self, vector: int, eoi_exit: bool) -> None:
        self.vector: Final = vector  # the SVI that was retired (0 when nothing was in service)
        self.eoi_exit: Final = eoi_exit  # the EOI-exit bitmap asked for an EOI-induced VM exit

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VirtualEoi) and self.vector == other.vector
                and self.eoi_exit == other.eoi_exit)

    def __hash__(self) -> int:
        return hash((self.vector, self.eoi_exit))

    def __repr__(self) -> str:
        return f"VirtualEoi(vector={self.vector}, eoi_exit={self.eoi_exit})"


class VirtualApic:
    """Virtual-interrupt delivery state of one vCPU: page + RVI/SVI + posted-interrupt descriptor."""

    def __init__(self, page: LocalApic) -> None:
        self.page = page
        self.rvi = 0  # guest interrupt status bits 7:0
        self.svi = 0  # guest interrupt status bits 15:8
        self.vppr = 0  # virtual-APIC page offset 0xA0, written only by PPR virtualization
        self.pir = 0  # posted-interrupt requests, 256 bits (§29.6)
        self.on = False  # outstanding-notification bit of the descriptor
        self.eoi_exit_bitmap = 0  # 256 bits (§24.6.8)
        self.interrupt_window_exiting = False
        self.recognized = False  # a pending virtual interrupt has been recognized (§29.2.1)

    # --- §29.1.3 PPR virtualization -------------------------------------------------------------


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.page, self.rvi, self.svi, self.vppr, self.pir, self.on,
                self.eoi_exit_bitmap, self.interrupt_window_exiting, self.recognized)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.page, self.rvi, self.svi, self.vppr, self.pir, self.on, self.eoi_exit_bitmap,
         self.interrupt_window_exiting, self.recognized) = saved

    def ppr_virtualization(self) -> None:
        """VPPR = VTPR if VTPR[7:4] >= SVI[7:4], else SVI & 0xF0. It reads SVI, not VISR."""
        vtpr = self.page.tpr
        self.vppr = vtpr & 0xFF if priority_class(vtpr) >= priority_class(self.svi) else self.svi & 0xF0

    # --- §29.2.1 evaluation of pending virtual interrupts ---------------------------------------

    def evaluate_pending(self) -> bool:
        """Recognize a pending virtual interrupt iff interrupt-window exiting is 0 and
        RVI[7:4] > VPPR[7:4]. Done only at VM entry, TPR/EOI/self-IPI virtualization and
        posted-interrupt processing — not continuously."""
        self.recognized = (
            not self.interrupt_window_exiting
            and priority_class(self.rvi) > priority_class(self.vppr)
        )
        return self.recognized

    def vm_entry(self) -> None:
        """VM entry with virtual-interrupt delivery (§29.2.1 lists it): PPR virtualization,
        then evaluation of pending virtual interrupts."""
        self.ppr_virtualization()
        self.evaluate_pending()

    # --- §29.2.2 virtual-interrupt delivery -----------------------------------------------------

    def can_deliver(self, interrupts_enabled: bool) -> bool:
        """Delivery happens at an instruction boundary with RFLAGS.IF = 1, no STI/MOV-SS blocking
        (folded into `interrupts_enabled`) and interrupt-window exiting 0. The virtual SVR enable
        bit is not a condition."""
        return self.recognized and interrupts_enabled and not self.interrupt_window_exiting

    def deliver(self) -> int:
        """Deliver the recognized virtual interrupt and return its vector.

        The vector is RVI itself: a stale RVI whose VIRR bit is clear is still delivered and
        becomes in service (the seed's bug). VISR[v] = 1; SVI = v; VPPR = v & 0xF0; VIRR[v] = 0;
        RVI = highest VIRR bit or 0.
        """
        vector = self.rvi
        self.page.isr |= 1 << vector
        self.svi = vector
        self.vppr = vector & 0xF0
        self.page.irr &= ~(1 << vector)
        self.rvi = max(highest(self.page.irr), 0)
        self.recognized = False
        return vector

    # --- §29.1.4 EOI virtualization -------------------------------------------------------------

    def eoi_virtualization(self) -> VirtualEoi:
        """Guest EOI write: VISR[SVI] = 0; SVI = highest VISR or 0; PPR virtualization; then an
        EOI-induced exit if the EOI-exit bitmap has the vector, else evaluation."""
        vector = self.svi
        self.page.isr &= ~(1 << vector)
        self.svi = max(highest(self.page.isr), 0)
        self.ppr_virtualization()
        if self.eoi_exit_bitmap & (1 << vector):
            return VirtualEoi(vector, True)
        self.evaluate_pending()
        return VirtualEoi(vector, False)

    # --- §29.1.2 TPR virtualization -------------------------------------------------------------

    def tpr_virtualization(self, value: int) -> None:
        """Guest TPR write (or MOV to CR8): VTPR = value, PPR virtualization, evaluation."""
        self.page.tpr = value & 0xFF
        self.ppr_virtualization()
        self.evaluate_pending()

    # --- §29.1.5 self-IPI virtualization --------------------------------------------------------

    def self_ipi_virtualization(self, vector: int) -> None:
        """VIRR[v] = 1; RVI = max(RVI, v); evaluation."""
        self.page.irr |= 1 << vector
        self.rvi = max(self.rvi, vector)
        self.evaluate_pending()

    # --- §29.6 posted-interrupt processing ------------------------------------------------------

    def post(self, vector: int) -> bool:
        """Hypervisor side of posting: PIR[v] = 1, then ON. Returns whether ON was newly set
        (so a notification must be sent)."""
        self.pir |= 1 << vector
        was_on, self.on = self.on, True
        return not was_on

    def posted_interrupt_processing(self) -> None:
        """The notification vector arrives in VMX non-root operation: ON = 0; (the physical EOI is
        the caller's); VIRR |= PIR; PIR = 0; RVI = max(RVI, highest PIR); evaluation."""
        self.on = False
        pir, self.pir = self.pir, 0
        if pir:
            self.page.irr |= pir
            self.rvi = max(self.rvi, highest(pir))
        self.evaluate_pending()
