"""The I/O APIC (Intel 82093AA datasheet, 290566-001, §3.2): redirection table, remote IRR, EOI.

Pure like the local APIC: `set_irq` and `eoi` return the interrupts the IOAPIC sends, and the
caller routes them. Only what interrupt delivery needs is modelled (no arbitration ID games).
"""

from __future__ import annotations

from typing import Any, Final

NUM_PINS: Final = 24
IOAPIC_VERSION: Final = 0x00170011  # §3.2.2: max redirection entry 23, version 0x11
IOREGSEL, IOWIN = 0x00, 0x10

RTE_MASKED: Final = 1 << 16
RTE_LEVEL: Final = 1 << 15
RTE_REMOTE_IRR: Final = 1 << 14
RTE_DELIVERY_STATUS: Final = 1 << 12
RTE_READ_ONLY: Final = RTE_REMOTE_IRR | RTE_DELIVERY_STATUS


class IoapicMessage:
    """An interrupt the IOAPIC sends to the local APICs (§3.2.4). (A plain class: one is made at
    every edge, and a dataclass's generated `__init__` stays Python in the compiled model.)"""

    __slots__ = ("delivery_mode", "destination", "level", "logical", "pin", "vector")

    def __init__(self, pin: int, vector: int, delivery_mode: int, logical: bool,
                 destination: int, level: bool) -> None:
        self.pin: Final = pin
        self.vector: Final = vector
        self.delivery_mode: Final = delivery_mode
        self.logical: Final = logical
        self.destination: Final = destination
        self.level: Final = level


    def _fields(self) -> tuple[int, int, int, bool, int, bool]:
        return (self.pin, self.vector, self.delivery_mode, self.logical, self.destination,
                self.level)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IoapicMessage) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        pin, vector, mode, logical, destination, level = self._fields()
        return (f"IoapicMessage(pin={pin}, vector={vector:#x}, delivery_mode={mode}, "
                f"logical={logical}, destination={destination:#x}, level={level})")


class Ioapic:
    def __init__(self) -> None:
        self.ioregsel = 0
        self.ioapic_id = 0
        # §3.2.4: every entry is masked after reset.
        self.redirection = [RTE_MASKED] * NUM_PINS
        self.line = [False] * NUM_PINS

    # --- register window (§3.1) -------------------------------------------------------------

    def read(self, offset: int) -> int:
        if offset == IOREGSEL:
            return self.ioregsel
        if offset != IOWIN:
            return 0
        index = self.ioregsel
        if index == 0:
            return self.ioapic_id << 24
        if index == 1:
            return IOAPIC_VERSION
        if 0x10 <= index < 0x10 + 2 * NUM_PINS:
            entry = self.redirection[(index - 0x10) >> 1]
            return (entry >> 32) & 0xFFFFFFFF if index & 1 else entry & 0xFFFFFFFF
        return 0

    def write(self, offset: int, value: int) -> tuple[IoapicMessage, ...]:
        if offset == IOREGSEL:
            self.ioregsel = value & 0xFF
            return ()
        if offset != IOWIN:
            return ()
        index = self.ioregsel
        if index == 0:
            self.ioapic_id = (value >> 24) & 0xF
        elif 0x10 <= index < 0x10 + 2 * NUM_PINS:
            pin = (index - 0x10) >> 1
            old = self.redirection[pin]
            if index & 1:
                self.redirection[pin] = (old & 0xFFFFFFFF) | ((value & 0xFF000000) << 32)
            else:
                low = (value & 0xFFFFFFFF & ~RTE_READ_ONLY) | (old & RTE_READ_ONLY)
                self.redirection[pin] = (old & ~0xFFFFFFFF) | low
            return self._service(pin)
        return ()

    def set_redirection(self, pin: int, entry: int) -> tuple[IoapicMessage, ...]:
        """Program a whole 64-bit entry (what two IOWIN writes do)."""
        keep = self.redirection[pin] & RTE_READ_ONLY
        self.redirection[pin] = (entry & ~RTE_READ_ONLY) | keep
        return self._service(pin)

    # --- interrupt input and EOI (§3.2.4) ------------------------------------------------------

    def set_irq(self, pin: int, asserted: bool) -> tuple[IoapicMessage, ...]:
        """Drive input `pin`. Edge-triggered entries send on a rising edge; level-triggered ones
        send while asserted and remote IRR is clear, then set remote IRR."""
        rising = asserted and not self.line[pin]
        self.line[pin] = asserted
        entry = self.redirection[pin]
        if entry & RTE_MASKED:
            return ()
        if entry & RTE_LEVEL:
            return self._service(pin)
        return (self._message(pin),) if rising else ()

    def eoi(self, vector: int) -> tuple[IoapicMessage, ...]:
        """A local APIC broadcast an EOI for a level-triggered `vector`: every level entry with that
        vector clears remote IRR and, if its line is still asserted, sends again."""
        sent: list[IoapicMessage] = []
        for pin, entry in enumerate(self.redirection):
            if entry & RTE_LEVEL and entry & 0xFF == vector and entry & RTE_REMOTE_IRR:
                self.redirection[pin] = entry & ~RTE_REMOTE_IRR
                sent.extend(self._service(pin))
        return tuple(sent)

    def remote_irr(self, pin: int) -> bool:
        return bool(self.redirection[pin] & RTE_REMOTE_IRR)

    def _service(self, pin: int) -> tuple[IoapicMessage, ...]:
        entry = self.redirection[pin]
        level = bool(entry & RTE_LEVEL)
        if not level or entry & RTE_MASKED or entry & RTE_REMOTE_IRR or not self.line[pin]:
            return ()
        self.redirection[pin] = entry | RTE_REMOTE_IRR
        return (self._message(pin),)

    def _message(self, pin: int) -> IoapicMessage:
        entry = self.redirection[pin]
        return IoapicMessage(
            pin=pin,
            vector=entry & 0xFF,
            delivery_mode=(entry >> 8) & 0b111,
            logical=bool(entry & (1 << 11)),
            destination=(entry >> 56) & 0xFF,
            level=bool(entry & RTE_LEVEL),
        )

    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.ioregsel, self.ioapic_id, self.redirection, list(self.redirection),
                self.line, list(self.line))

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        self.ioregsel, self.ioapic_id, redirection, entries, line, levels = saved
        redirection[:] = entries
        line[:] = levels
        self.redirection, self.line = redirection, line

