"""Destination matching of IPIs between several local APICs (SDM §10.6.1, §10.6.2, §10.12.10.2)."""

from __future__ import annotations

from apiclab.arch.ipi_bus import addressed, destinations, lowest_priority
from apiclab.arch.lapic import Icr, LocalApic
from apiclab.arch.registers import Reg


def _icr(dest: int, *, logical: bool = False, shorthand: int = 0, mode: int = 0) -> Icr:
    return Icr(0x51, mode, logical, True, False, shorthand, dest)


def _apics(n: int) -> list[LocalApic]:
    return [LocalApic(i) for i in range(n)]


def test_physical_matches_the_id_and_the_broadcast() -> None:
    apics = _apics(3)
    assert destinations(0, _icr(2), apics) == [2]
    assert destinations(0, _icr(0xFF), apics) == [0, 1, 2]
    assert destinations(0, _icr(7), apics) == []


def test_physical_reaches_every_apic_whose_current_id_matches() -> None:
    """§10.6.2.1: each APIC compares a physical destination with its own ID, the one software
    wrote (§10.4.6), so two APICs sharing ID 0 both accept; nobody answers to the old ID 1."""
    apics = _apics(3)
    apics[1].write(Reg.ID, 0, now=0)
    assert destinations(0, _icr(0), apics) == [0, 1]
    assert destinations(2, _icr(1), apics) == []
    assert destinations(0, _icr(2), apics) == [2]


def test_shorthands_ignore_the_destination_field() -> None:
    apics = _apics(3)
    assert destinations(1, _icr(0, shorthand=1), apics) == [1]
    assert destinations(1, _icr(0, shorthand=2), apics) == [0, 1, 2]
    assert destinations(1, _icr(0, shorthand=3), apics) == [0, 2]


def test_logical_flat_is_a_bit_mask_of_ldr_31_24() -> None:
    apics = _apics(3)
    for i, apic in enumerate(apics):
        apic.ldr = (1 << i) << 24
    assert destinations(0, _icr(0x06, logical=True), apics) == [1, 2]


def test_logical_cluster_needs_the_cluster_and_a_common_bit() -> None:
    apics = _apics(3)
    for apic, ldr in zip(apics, (0x12, 0x11, 0x21), strict=True):
        apic.dfr = 0x0FFFFFFF
        apic.ldr = ldr << 24
    assert destinations(0, _icr(0x11, logical=True), apics) == [1]
    assert destinations(0, _icr(0xF1, logical=True), apics) == [1, 2]  # cluster 0xF: all


def test_x2apic_logical_is_cluster_of_the_derived_ldr() -> None:
    apic = LocalApic(0x13)
    apic.x2apic = True  # logical ID: cluster 1, bit 3
    assert addressed(apic, _icr(0x0001_0008, logical=True))
    assert not addressed(apic, _icr(0x0000_0008, logical=True))
    assert addressed(apic, _icr(0xFFFFFFFF, logical=True))


def test_lowest_priority_picks_one_lowest_tpr() -> None:
    apics = _apics(3)
    apics[1].tpr, apics[2].tpr = 0x20, 0x10
    assert lowest_priority([1, 2], apics) == [2]
    assert lowest_priority([], apics) == []
