"""The `kvm_lapic_state` register page: the 1 KiB image KVM_GET_LAPIC / KVM_SET_LAPIC carry.

Linux `include/uapi/asm/kvm.h`: `struct kvm_lapic_state { char regs[KVM_APIC_REG_SIZE]; }` with
KVM_APIC_REG_SIZE = 0x400. It is the xAPIC register page (SDM §10.4.1, Table 10-1): register at
offset `off` is the little-endian u32 at bytes off..off+3. In x2APIC mode KVM keeps the x2APIC ID
in the ID register (bits 31:0) unless the x2APIC API quirk is disabled; the codec is layout only.

RVI, SVI, PIR and ON are not in the page (docs/design.md §2): a restore must derive them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from apiclab.arch.registers import LVT_REGS, Reg
from apiclab.errors import DecodeError

LAPIC_STATE_SIZE = 0x400

# `LapicState.for_load`: SVR, the LVT entries, TPR, LDR, DFR, ESR, ICR low and high, IRR, ISR,
# TMR, the divide configuration, the initial and the current count
LoadedRegisters = tuple[int, tuple[int, ...], int, int, int, int, int, int, int, int, int, int,
                        int, int]


class LapicStateError(DecodeError):
    """A register image that is not a valid `kvm_lapic_state`."""


def _vector_set_from_words(words: list[int]) -> int:
    bits = 0
    for i, word in enumerate(words):
        bits |= (word & 0xFFFFFFFF) << (32 * i)
    return bits


def _words_from_vector_set(bits: int) -> list[int]:
    return [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(8)]


@dataclass
class LapicState:
    """A decoded register page. `regs` maps offset → 32-bit value for every 16-byte slot."""

    regs: dict[int, int]

    @classmethod
    def zero(cls) -> LapicState:
        return cls({off: 0 for off in range(0, LAPIC_STATE_SIZE, 0x10)})

    @classmethod
    def decode(cls, image: bytes) -> LapicState:
        if len(image) != LAPIC_STATE_SIZE:
            raise LapicStateError(
                f"kvm_lapic_state must be {LAPIC_STATE_SIZE} bytes, got {len(image)}"
            )
        regs = {
            off: struct.unpack_from("<I", image, off)[0]
            for off in range(0, LAPIC_STATE_SIZE, 0x10)
        }
        return cls(regs)

    def encode(self) -> bytes:
        buf = bytearray(LAPIC_STATE_SIZE)
        for off, value in self.regs.items():
            if off % 0x10 or not 0 <= off < LAPIC_STATE_SIZE:
                raise LapicStateError(f"register offset {off:#x} is not a 16-byte slot of the page")
            struct.pack_into("<I", buf, off, value & 0xFFFFFFFF)
        return bytes(buf)

    def get(self, offset: int) -> int:
        return self.regs.get(offset, 0)

    def set(self, offset: int, value: int) -> None:
        self.regs[offset] = value & 0xFFFFFFFF

    def for_load(self) -> LoadedRegisters:
        """What `LocalApic.load_page` takes from the page, in one call: SVR, the LVT entries in
        `LVT_REGS` order, TPR, LDR, DFR, ESR, ICR low and high, IRR, ISR, TMR, the divide
        configuration, the initial and the current count."""
        get = self.get
        return (get(Reg.SVR), tuple(get(reg) for reg in LVT_REGS), get(Reg.TPR), get(Reg.LDR),
                get(Reg.DFR), get(Reg.ESR), get(Reg.ICR_LOW), get(Reg.ICR_HIGH), self.irr,
                self.isr, self.tmr, get(Reg.TIMER_DIVIDE), get(Reg.TIMER_INITIAL),
                get(Reg.TIMER_CURRENT))

    def _vectors(self, base: int) -> int:
        return _vector_set_from_words([self.get(base + 0x10 * i) for i in range(8)])

    def _set_vectors(self, base: int, bits: int) -> None:
        for i, word in enumerate(_words_from_vector_set(bits)):
            self.set(base + 0x10 * i, word)

    @property
    def irr(self) -> int:
        """IRR as a 256-bit int (bit v = vector v)."""
        return self._vectors(Reg.IRR0)

    @irr.setter
    def irr(self, bits: int) -> None:
        self._set_vectors(Reg.IRR0, bits)

    @property
    def isr(self) -> int:
        return self._vectors(Reg.ISR0)

    @isr.setter
    def isr(self, bits: int) -> None:
        self._set_vectors(Reg.ISR0, bits)

    @property
    def tmr(self) -> int:
        return self._vectors(Reg.TMR0)

    @tmr.setter
    def tmr(self, bits: int) -> None:
        self._set_vectors(Reg.TMR0, bits)


def _read_only_bank(index: int) -> Any:
    """IRR, ISR or TMR (`index` 0-2) of the read-only reset image: read from its decoded banks."""

    def read(image: ReadOnlyLapicState) -> int:
        return image._banks[index]

    def write(image: ReadOnlyLapicState, bits: int) -> None:
        raise TypeError("the reset image is read-only")

    return property(read, write)


class ReadOnlyLapicState(LapicState):
    """A register image that is only ever read, with its IRR, ISR and TMR banks decoded once
    (the one every system reset pushes: KVM_SET_LAPIC reads them at every reset). It lives here,
    not with its user, because it redefines properties per class, which only an interpreted
    class can (`apiclab.native` compiles the machine)."""

    def __init__(self, image: LapicState) -> None:
        super().__init__(dict(image.regs))
        self._banks = (image.irr, image.isr, image.tmr)
        # every 16-byte slot of the page is in `regs` (LapicState.zero), so a plain lookup
        # answers as `get` does
        assert len(self.regs) == LAPIC_STATE_SIZE // 0x10
        self.get = self.regs.__getitem__  # type: ignore[method-assign,assignment]
        self._for_load = super().for_load()

    def for_load(self) -> LoadedRegisters:
        return self._for_load

    irr = _read_only_bank(0)
    isr = _read_only_bank(1)
    tmr = _read_only_bank(2)

    def set(self, offset: int, value: int) -> None:
        raise TypeError("the reset image is read-only")
