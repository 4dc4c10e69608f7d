"""256-bit vector sets as Python ints (bit v = vector v) and priority-class helpers.

SDM vol. 3A (325384-059US) §10.8.3: a vector's priority class is bits 7:4; §10.8.4: the IRR, ISR
and TMR are 256-bit registers, one bit per vector, and the highest set bit is the one that counts.
"""

from __future__ import annotations


def highest(bits: int) -> int:
    """Highest vector in the set, or -1 when empty (KVM's `apic_find_highest_*` convention)."""
    return bits.bit_length() - 1


def priority_class(vector: int) -> int:
    """Bits 7:4 of a vector or priority register (SDM §10.8.3)."""
    return (vector >> 4) & 0xF


def vectors_of(bits: int) -> list[int]:
    """The vectors of a set, ascending."""
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


def set_of(vectors: list[int] | tuple[int, ...]) -> int:
    bits = 0
    for v in vectors:
        bits |= 1 << v
    return bits
