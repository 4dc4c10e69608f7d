"""The local APIC as the SDM describes it (vol. 3A, 325384-059US, chapter 10).

One class, methods named after the SDM's operations. Register state lives here once; PPR and the
highest vectors are computed on demand, never cached (a stale cache is exactly the kind of bug
this project studies).
Time is passed in (`now` in ns), never read, and a register write *returns* what it causes
(an IPI to send, an EOI to broadcast, a timer to re-arm) instead of calling other devices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_TSC_DEADLINE, LVT_REGS, Reg, offset_of_msr
from apiclab.arch.vectors import highest, priority_class

# The registers of the page beyond ID, version, PPR, current count and the LVT (`to_page`).
_PAGE_REGS = (
    Reg.TPR, Reg.LDR, Reg.DFR, Reg.SVR, Reg.ESR, Reg.ICR_LOW, Reg.ICR_HIGH,
    Reg.TIMER_INITIAL, Reg.TIMER_DIVIDE,
)

# SDM §10.5.3 Figure 10-9: ESR bits.
ESR_SEND_ILLEGAL_VECTOR: Final = 1 << 5
ESR_RECEIVE_ILLEGAL_VECTOR: Final = 1 << 6
ESR_ILLEGAL_REGISTER: Final = 1 << 7

SVR_APIC_ENABLED: Final = 1 << 8  # §10.9 Figure 10-23
SVR_FOCUS_DISABLED: Final = 1 << 9
SVR_EOI_BROADCAST_SUPPRESSION: Final = 1 << 12  # §10.8.5
APIC_VERSION: Final = 0x00050014  # §10.4.8: integrated APIC (0x14), max LVT entry 5 (as KVM reports)
VERSION_EOI_SUPPRESSION: Final = 1 << 24  # §10.4.8: SVR bit 12 exists only where this is set
# SVR bit 12 is reserved when the version register's bit 24 is clear (§10.9 Figure 10-23), as it
# is for the APIC modelled here.
SVR_WRITABLE = 0xFF | SVR_APIC_ENABLED | SVR_FOCUS_DISABLED | (
    SVR_EOI_BROADCAST_SUPPRESSION if APIC_VERSION & VERSION_EOI_SUPPRESSION else 0)

LVT_MASKED: Final = 1 << 16  # §10.5.1 Figure 10-8
LVT_LEVEL_TRIGGERED: Final = 1 << 15
LVT_REMOTE_IRR: Final = 1 << 14
LVT_DELIVERY_STATUS: Final = 1 << 12
TIMER_MODE_SHIFT: Final = 17
TIMER_ONE_SHOT, TIMER_PERIODIC, TIMER_TSC_DEADLINE = 0, 1, 2

# Writable bits of each LVT register (§10.5.1 Figure 10-8): the timer has no delivery mode, LINT0/1
# have polarity and trigger, the error register has only vector and mask.
_LVT_WRITABLE = {
    Reg.LVT_TIMER: 0xFF | LVT_MASKED | (0b11 << TIMER_MODE_SHIFT),
    Reg.LVT_CMCI: 0x7FF | LVT_MASKED,
    Reg.LVT_THERMAL: 0x7FF | LVT_MASKED,
    Reg.LVT_PERF: 0x7FF | LVT_MASKED,
    Reg.LVT_LINT0: 0x7FF | (1 << 13) | LVT_LEVEL_TRIGGERED | LVT_MASKED,
    Reg.LVT_LINT1: 0x7FF | (1 << 13) | LVT_LEVEL_TRIGGERED | LVT_MASKED,
    Reg.LVT_ERROR: 0xFF | LVT_MASKED,
}

# §10.5.4 Figure 10-10: divide configuration bits 0, 1 and 3 → divisor.
_DIVISORS = {0b000: 2, 0b001: 4, 0b010: 8, 0b011: 16, 0b100: 32, 0b101: 64, 0b110: 128, 0b111: 1}

DELIVERY_FIXED, DELIVERY_LOWEST, DELIVERY_SMI, DELIVERY_NMI = 0, 1, 2, 4
DELIVERY_INIT, DELIVERY_STARTUP, DELIVERY_EXTINT = 5, 6, 7
SHORTHAND_NONE, SHORTHAND_SELF, SHORTHAND_ALL, SHORTHAND_ALL_BUT_SELF = 0, 1, 2, 3


# §10.12.1.2 Table 10-6: the x2APIC MSRs a WRMSR may write; any other raises #GP (read-only ones
# such as ID, version, PPR, LDR, ISR/TMR/IRR and current count, and the ones that do not exist:
# DFR, APR, ICR high, the reserved offsets).
_X2APIC_WRITABLE = frozenset({
    Reg.TPR, Reg.EOI, Reg.SVR, Reg.ESR, Reg.ICR_LOW, *LVT_REGS, Reg.TIMER_INITIAL,
    Reg.TIMER_DIVIDE, Reg.SELF_IPI,
})

_X2APIC_READABLE = frozenset({
    Reg.ID, Reg.VERSION, Reg.TPR, Reg.PPR, Reg.LDR, Reg.SVR, Reg.ESR, Reg.ICR_LOW, *LVT_REGS,
    Reg.TIMER_INITIAL, Reg.TIMER_CURRENT, Reg.TIMER_DIVIDE,
})


def timer_divisor(divide_config: int) -> int:
    """The divisor selected by the divide configuration register (SDM §10.5.4)."""
    return _DIVISORS[(divide_config & 0b11) | ((divide_config >> 1) & 0b100)]


class GeneralProtection(Exception):
    """The access would raise #GP in the guest (e.g. an x2APIC MSR that does not exist)."""


def self_ipi_vector(value: int) -> int:
    """The vector a write of the SELF IPI register sends: bits 7:0 (§10.12.11; bits 31:8 are
    reserved)."""
    return value & 0xFF


class Accept(Enum):
    """What became of an interrupt offered to the APIC (§10.8.2, §10.8.4, §10.5.3)."""

    ACCEPTED = "accepted"
    MERGED = "merged"  # its IRR bit was already set: one request is lost (§10.8.4)
    ILLEGAL = "illegal"  # vectors 0-15: ESR receive-illegal-vector (§10.5.3)
    DISABLED = "disabled"  # software-disabled APIC takes no fixed interrupts (§10.4.7.2)


@dataclass(frozen=True, slots=True)
class Icr:
    """A decoded interrupt command (§10.6.1 Figure 10-12; x2APIC §10.12.9)."""

    vector: int
    delivery_mode: int
    logical: bool
    level_assert: bool
    level_triggered: bool
    shorthand: int
    destination: int

    @classmethod
    def decode(cls, value: int, x2apic: bool) -> Icr:
        return cls(
            vector=value & 0xFF,
            delivery_mode=(value >> 8) & 0b111,
            logical=bool(value & (1 << 11)),
            level_assert=bool(value & (1 << 14)),
            level_triggered=bool(value & (1 << 15)),
            shorthand=(value >> 18) & 0b11,
            destination=(value >> 32) & 0xFFFFFFFF if x2apic else (value >> 56) & 0xFF,
        )


@dataclass(frozen=True, slots=True)
class SendIpi:
    """Effect: the APIC sends this IPI (the caller routes it; `to_self` when it targets us)."""

    icr: Icr
    to_self: bool


@dataclass(frozen=True, slots=True)
class LocalInterrupt:
    """Effect: the APIC raises one of its own LVT interrupts (e.g. the error interrupt, §10.5.3);
    the caller accepts `vector` into this APIC."""

    vector: int


@dataclass(frozen=True, slots=True)
class EoiBroadcast:
    """Effect: a level-triggered vector was EOIed; the IOAPIC must see it (§10.8.5)."""

    vector: int


class TimerChanged:
    """Effect: the timer's registers changed; the platform re-arms it (§10.5.4). (A plain class,
    as `EoiResult`.)"""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimerChanged)

    def __hash__(self) -> int:
        return hash(TimerChanged)

    def __repr__(self) -> str:
        return "TimerChanged()"


Effect = SendIpi | LocalInterrupt | EoiBroadcast | TimerChanged


class EoiResult:
    """What an EOI did. (A plain class: one is made at every EOI, and a dataclass's generated
    `__init__` stays Python in the compiled model, `apiclab.native`.)"""

    __slots__ = ("broadcast", "vector")

    def __init__(self, vector: int, broadcast: bool) -> None:
        self.vector: Final = vector  # -1 when the ISR was empty (the EOI did nothing)
        self.broadcast: Final = broadcast

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EoiResult) and self.vector == other.vector
                and self.broadcast == other.broadcast)

    def __hash__(self) -> int:
        return hash((self.vector, self.broadcast))

    def __repr__(self) -> str:
        return f"EoiResult(vector={self.vector}, broadcast={self.broadcast})"


class LocalApic:
    """Register file and rules of one local APIC."""

    def __init__(self, apic_id: int = 0, *, bus_hz: int = 1_000_000_000) -> None:
        # The ID the hardware gives the APIC at power-up (§10.4.6; CPUID.01H:EBX[31:24] and
        # CPUID.0BH:EDX report it as the initial APIC ID); `apic_id` is the ID the APIC answers
        # to now, which software may change in xAPIC mode (`write`, Reg.ID).
        self.initial_id = apic_id
        self.apic_id = apic_id
        self.bus_hz = bus_hz  # KVM's APIC bus runs at 1 GHz (docs/design.md §1)
        self.x2apic = False
        self.reset()

    # --- reset and INIT (§10.4.7.1, §10.4.7.3) -------------------------------------------------


    def reset(self) -> None:
        """Power-up / RESET values (§10.4.7.1): the ID the hardware assigns, all zero but DFR
        (all ones), LVTs masked, SVR = 0xFF (software disabled)."""
        self.apic_id = self.initial_id
        self.tpr = 0
        self.ldr = 0
        self.dfr = 0xFFFFFFFF
        self.svr = 0xFF
        self.esr = 0
        self.esr_pending = 0
        self.error_armed = True  # §10.5.3: an ESR write "rearms the error interrupt"
        self.icr = 0
        self.irr = 0
        self.isr = 0
        self.tmr = 0
        self.lvt = {int(r): LVT_MASKED for r in LVT_REGS}
        self.timer_initial = 0
        self.timer_divide = 0
        self.timer_start_ns = 0
        self.timer_ran_out = False  # a one-shot count reached 0: it stays there (§10.5.4)
        self.tsc_deadline = 0

    def init(self) -> None:
        """INIT (§10.4.7.3): as RESET, but the APIC ID and the mode are kept."""
        keep_id, keep_mode = self.apic_id, self.x2apic
        self.reset()
        self.apic_id, self.x2apic = keep_id, keep_mode

    def set_x2apic(self, on: bool) -> None:
        """Enter or leave x2APIC mode (IA32_APIC_BASE.EXTD, §10.12.5.1). Entering it, the APIC
        answers to its x2APIC ID: §10.12.5.1 has the 32-bit x2APIC ID initialized by hardware
        at RESET and preserved across xAPIC → x2APIC, so an 8-bit ID software wrote through the
        xAPIC page does not carry over. KVM does the same (kvm_lapic_set_base loads the x2APIC
        ID from the vCPU's ID when EXTD is set; measured, docs/conform.md)."""
        if on and not self.x2apic:
            self.apic_id = self.initial_id
        self.x2apic = on

    # --- derived registers ----------------------------------------------------------------------

    @property
    def software_enabled(self) -> bool:
        return bool(self.svr & SVR_APIC_ENABLED)

    def ppr(self) -> int:
        """Processor priority (§10.8.3.1): TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4."""
        isrv = max(highest(self.isr), 0)
        if priority_class(self.tpr) >= priority_class(isrv):
            return self.tpr & 0xFF
        return isrv & 0xF0

    def highest_priority_int(self) -> int:
        """The IRR vector the APIC would dispatch now, or -1 (§10.8.3.1, §10.8.4).

        A vector is dispatched only when its class is above PPR[7:4]; a software-disabled APIC
        holds its pending interrupts (§10.4.7.2).
        """
        if not self.software_enabled:
            return -1
        vector = highest(self.irr)
        if vector < 0 or priority_class(vector) <= priority_class(self.ppr()):
            return -1
        return vector

    # --- acceptance, dispatch and EOI -----------------------------------------------------------

    def accept(self, vector: int, *, level: bool = False) -> Accept:
        """Accept a fixed interrupt into the IRR (§10.8.4); TMR records its trigger mode."""
        if vector < 16:
            self.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR
            return Accept.ILLEGAL
        if not self.software_enabled:
            return Accept.DISABLED
        bit = 1 << vector
        merged = bool(self.irr & bit)
        self.irr |= bit
        self.tmr = self.tmr | bit if level else self.tmr & ~bit
        return Accept.MERGED if merged else Accept.ACCEPTED

    def acknowledge(self) -> int:
        """INTA (§10.8.4): move the highest deliverable vector from IRR to ISR and return it.

        With nothing deliverable the APIC answers with the spurious vector (§10.9) and no ISR bit.
        """
        vector = self.highest_priority_int()
        if vector < 0:
            return self.svr & 0xFF
        self.irr &= ~(1 << vector)
        self.isr |= 1 << vector
        return vector

    def receive_eoi(self) -> EoiResult:
        """EOI (§10.8.5): clear the highest ISR bit; a level-triggered vector's EOI goes to the
        IOAPIC unless SVR bit 12 suppresses the broadcast. With the ISR empty it does nothing."""
        vector = highest(self.isr)
        if vector < 0:
            return EoiResult(-1, False)
        self.isr &= ~(1 << vector)
        level = bool(self.tmr & (1 << vector))
        return EoiResult(vector, level and not self.svr & SVR_EOI_BROADCAST_SUPPRESSION)

    # --- timer (§10.5.4) ------------------------------------------------------------------------

    @property
    def timer_mode(self) -> int:
        return (self.lvt[Reg.LVT_TIMER] >> TIMER_MODE_SHIFT) & 0b11

    def ns_per_count(self) -> float:
        return timer_divisor(self.timer_divide) * 1e9 / self.bus_hz

    def timer_current(self, now: int) -> int:
        """Current count at `now` (§10.5.4): counts down from the initial count at bus/divide;
        periodic mode reloads, one-shot stops at 0; TSC-deadline mode reads 0."""
        if self.timer_initial == 0 or self.timer_mode == TIMER_TSC_DEADLINE or self.timer_ran_out:
            return 0
        elapsed = int((now - self.timer_start_ns) / self.ns_per_count())
        if self.timer_mode == TIMER_PERIODIC:
            return self.timer_initial - elapsed % self.timer_initial
        return max(self.timer_initial - elapsed, 0)

    def timer_fire(self) -> int:
        """The LVT timer fires: its vector, or -1 when masked (§10.5.1)."""
        entry = self.lvt[Reg.LVT_TIMER]
        return -1 if entry & LVT_MASKED else entry & 0xFF

    # --- register access (§10.4.1 Table 10-1; x2APIC §10.12.1.2) --------------------------------

    def read(self, offset: int, now: int) -> int:
        """Read a register through the xAPIC page (or, via `read_msr`, as x2APIC)."""
        match offset:
            case Reg.ID:
                return self.apic_id if self.x2apic else (self.apic_id & 0xFF) << 24
            case Reg.VERSION:
                return APIC_VERSION
            case Reg.TPR:
                return self.tpr
            case Reg.APR:
                return 0
            case Reg.PPR:
                return self.ppr()
            case Reg.LDR:
                return self.x2apic_ldr() if self.x2apic else self.ldr
            case Reg.DFR:
                return self.dfr
            case Reg.SVR:
                return self.svr
            case Reg.ESR:
                return self.esr
            case Reg.ICR_LOW:
                return self.icr & 0xFFFFFFFF
            case Reg.ICR_HIGH:
                return self.icr >> 32
            case Reg.TIMER_INITIAL:
                return self.timer_initial
            case Reg.TIMER_CURRENT:
                return self.timer_current(now)
            case Reg.TIMER_DIVIDE:
                return self.timer_divide
            case _ if offset in self.lvt:
                return self.lvt[offset]
            case _ if 0x100 <= offset < 0x280 and offset % 0x10 == 0:
                bank = {0x100: self.isr, 0x180: self.tmr, 0x200: self.irr}[offset & 0x380]
                return (bank >> (32 * ((offset & 0x70) >> 4))) & 0xFFFFFFFF
        return 0

    def write(self, offset: int, value: int, now: int) -> tuple[Effect, ...]:
        """Write a register; returns the effects the write causes."""
        if offset == Reg.ICR_LOW and self.x2apic:
            return self.write_icr(value)  # §10.12.9: in x2APIC mode one 64-bit register
        value &= 0xFFFFFFFF
        match offset:
            case Reg.ID if not self.x2apic:
                # §10.4.6: "Some processors permit software to modify the APIC ID. However, the
                # ability of software to modify the APIC ID is processor model specific." The
                # model takes the write, as KVM does (kvm_lapic_reg_write → kvm_apic_set_xapic_id,
                # bits 31:24) and QEMU (apic_mem_write, s->id = val >> 24); Bochs 2.7 ignores it.
                # Taking it is the choice that lets the suite state §10.6.2.1 for two APICs of
                # one ID (each compares a physical destination with its own ID: both accept).
                # In x2APIC mode the ID register is read only (§10.12.1.2 Table 10-6): WRMSR
                # raises #GP (`check_msr_write`), so this case is xAPIC only.
                self.apic_id = value >> 24
            case Reg.TPR:
                self.tpr = value & 0xFF
            case Reg.EOI:
                result = self.receive_eoi()
                return (EoiBroadcast(result.vector),) if result.broadcast else ()
            case Reg.LDR if not self.x2apic:
                self.ldr = value & 0xFF000000
            case Reg.DFR if not self.x2apic:
                self.dfr = value | 0x0FFFFFFF
            case Reg.SVR:
                return self.write_svr(value)
            case Reg.ESR:
                # §10.5.3: a write latches the errors seen since the previous write and rearms
                # the APIC error interrupt triggering mechanism.
                self.esr, self.esr_pending = self.esr_pending, 0
                self.error_armed = True
            case Reg.ICR_HIGH if not self.x2apic:
                self.icr = (self.icr & 0xFFFFFFFF) | (value << 32)
            case Reg.ICR_LOW:
                return self.write_icr((self.icr & ~0xFFFFFFFF) | value)
            case Reg.TIMER_INITIAL:
                if self.timer_mode == TIMER_TSC_DEADLINE:
                    return ()  # §10.5.4.1: ignored in TSC-deadline mode
                self.timer_initial = value
                self.timer_start_ns = now
                self.timer_ran_out = False
                return (TimerChanged(),)
            case Reg.TIMER_DIVIDE:
                self.timer_divide = value & 0b1011
                return (TimerChanged(),)
            case Reg.SELF_IPI if self.x2apic:
                icr = Icr(self_ipi_vector(value), DELIVERY_FIXED, False, True, False, SHORTHAND_SELF, 0)
                return self._send(icr)
            case _ if offset in self.lvt:
                return self.write_lvt(offset, value)
        return ()

    def write_svr(self, value: int) -> tuple[Effect, ...]:
        """SVR (§10.9): clearing bit 8 software-disables the APIC and masks every LVT entry
        (§10.4.7.2); re-enabling leaves them masked until software unmasks them."""
        self.svr = value & SVR_WRITABLE
        if not self.software_enabled:
            for reg in self.lvt:
                self.lvt[reg] |= LVT_MASKED
            return (TimerChanged(),)
        return ()

    def write_lvt(self, offset: int, value: int) -> tuple[Effect, ...]:
        """LVT entry (§10.5.1): only writable bits stick; while software-disabled the mask bit
        cannot be cleared (§10.4.7.2). Delivery status and remote IRR are read-only."""
        keep = self.lvt[offset] & (LVT_REMOTE_IRR | LVT_DELIVERY_STATUS)
        entry = (value & _LVT_WRITABLE[offset]) | keep
        if not self.software_enabled:
            entry |= LVT_MASKED
        if offset == Reg.LVT_TIMER:
            old_mode = self.timer_mode
            self.lvt[offset] = entry
            if (self.timer_mode == TIMER_TSC_DEADLINE) != (old_mode == TIMER_TSC_DEADLINE):
                # §10.5.4.1: "transitioning between TSC-deadline mode and other timer modes also
                # disarms the timer". One-shot ↔ periodic is no such transition: the count goes
                # on from where it was (kvm-unit-tests x86/apic.c test_apic_change_mode).
                self.timer_initial = 0
                self.tsc_deadline = 0
            return (TimerChanged(),)
        self.lvt[offset] = entry
        return ()

    def write_icr(self, value: int) -> tuple[Effect, ...]:
        """ICR (§10.6.1): writing the low dword (the whole MSR in x2APIC) sends the IPI.
        Delivery status reads idle at once: the model delivers instantly."""
        self.icr = value & ~LVT_DELIVERY_STATUS
        return self._send(Icr.decode(self.icr, self.x2apic))

    def _send(self, icr: Icr) -> tuple[Effect, ...]:
        own = self.apic_id if self.x2apic else self.apic_id & 0xFF
        broadcast = 0xFFFFFFFF if self.x2apic else 0xFF
        to_self = icr.shorthand in (SHORTHAND_SELF, SHORTHAND_ALL) or (
            icr.shorthand == SHORTHAND_NONE
            and not icr.logical
            and icr.destination in (own, broadcast)
        )
        fixed = icr.delivery_mode in (DELIVERY_FIXED, DELIVERY_LOWEST)
        if fixed and icr.level_triggered:
            # §10.6.1, Table 10-3 note 2: a fixed IPI with trigger mode level is issued as edge.
            icr = replace(icr, level_triggered=False)
        if fixed and icr.vector < 16:
            # §10.5.3: the sender flags "send illegal vector"; a self-IPI is also received
            # illegally here. One error interrupt reports both (ESR bits accumulate).
            bits = ESR_SEND_ILLEGAL_VECTOR | (ESR_RECEIVE_ILLEGAL_VECTOR if to_self else 0)
            others = () if icr.shorthand == SHORTHAND_SELF else (SendIpi(icr, False),)
            return self.signal_error(bits) + others
        return (SendIpi(icr, to_self),)

    def signal_error(self, bits: int) -> tuple[Effect, ...]:
        """An error the APIC detects (§10.5.3): ESR bits accumulate until the next ESR write,
        and the LVT error entry raises its interrupt."""
        self.esr_pending |= bits
        return self.error_interrupt()

    def error_interrupt(self) -> tuple[Effect, ...]:
        """The LVT error entry's interrupt, unless masked (§10.5.3).

        §10.5.3: writing the ESR "rearms the APIC error interrupt triggering mechanism", so after
        one error interrupt further errors only accumulate in the ESR until the next ESR write.
        This also ends the chain an illegal LVT error vector (0-15) would start: the error
        interrupt is received illegally, which is an error, which would raise it again.
        """
        entry = self.lvt[Reg.LVT_ERROR]
        if entry & LVT_MASKED or not self.error_armed:
            return ()
        self.error_armed = False
        return (LocalInterrupt(entry & 0xFF),)

    def x2apic_ldr(self) -> int:
        """x2APIC logical ID, derived from the x2APIC ID (§10.12.10.2)."""
        return ((self.apic_id >> 4) << 16) | (1 << (self.apic_id & 0xF))

    # --- the register page (the 1 KiB image KVM_GET_LAPIC / KVM_SET_LAPIC carry) --------------

    def to_page(self, now: int) -> LapicState:
        """The register page as read at `now` (registers at their §10.4.1 offsets, Table 10-1;
        the timer's current count as it stands)."""
        page = LapicState.zero()
        for reg in (*_PAGE_REGS, Reg.ID, Reg.VERSION, Reg.PPR, Reg.TIMER_CURRENT, *self.lvt):
            page.set(reg, self.read(reg, now))
        page.irr, page.isr, page.tmr = self.irr, self.isr, self.tmr
        return page

    def load_page(self, page: LapicState, now: int) -> int:
        """Take every register from `page` at `now` (bits a register does not implement
        dropped), the timer's count continuing from the page's current count. Returns that
        current count (0 with a non-zero initial count: a one-shot that has run out); re-arming
        the timer is the caller's, who owns time."""
        (svr, lvt, tpr, ldr, dfr, esr, icr_low, icr_high, irr, isr, tmr, divide, initial,
         current) = page.for_load()
        self.svr = svr & 0x13FF
        for reg, entry in zip(LVT_REGS, lvt, strict=True):
            self.lvt[reg] = entry
        self.tpr = tpr & 0xFF
        self.ldr, self.dfr = ldr, dfr
        self.esr, self.esr_pending = esr, 0
        self.error_armed = True  # not in the register page; a loaded APIC starts armed
        self.icr = icr_low | icr_high << 32
        self.irr, self.isr, self.tmr = irr, isr, tmr
        self.timer_divide = divide & 0b1011
        self.timer_initial = initial
        self.timer_ran_out = False  # the page's current count says where the count is
        remaining = min(current, self.timer_initial)
        elapsed = self.timer_initial - remaining if remaining else self.timer_initial
        # (a stopped timer, as in the reset image, started now: no float arithmetic for it)
        self.timer_start_ns = now - round(elapsed * self.ns_per_count()) if elapsed else now
        return remaining

    @classmethod
    def from_page(cls, page: LapicState, now: int, apic_id: int = 0) -> LocalApic:
        """A local APIC whose registers are `page`'s (see `load_page`)."""
        apic = cls(apic_id)
        apic.load_page(page, now)
        return apic

    # --- x2APIC MSR access (§10.12.1.2) ---------------------------------------------------------

    def _require_x2apic(self, msr: int) -> None:
        """§10.12.1.2: MSRs 0x800-0x8FF are the APIC's registers only in x2APIC mode; RDMSR or
        WRMSR of them in xAPIC mode, or with the APIC disabled, raises #GP."""
        if not self.x2apic:
            raise GeneralProtection(f"MSR {msr:#x}: the APIC is not in x2APIC mode")

    def read_msr(self, msr: int, now: int) -> int:
        """RDMSR of IA32_TSC_DEADLINE or an x2APIC register; GeneralProtection where the SDM
        raises #GP."""
        if msr == IA32_TSC_DEADLINE:
            return self.tsc_deadline
        self._require_x2apic(msr)
        offset = offset_of_msr(msr)
        if offset not in _X2APIC_READABLE and not 0x100 <= offset < 0x280:
            # write-only (EOI, self IPI), gone in x2APIC (DFR, APR, ICR high) or reserved
            raise GeneralProtection(f"x2APIC MSR {msr:#x} is not readable")
        if offset == Reg.ICR_LOW:
            return self.icr
        return self.read(offset, now)

    def check_msr_write(self, msr: int, value: int) -> None:
        """The #GP rules of an x2APIC WRMSR (§10.12.1.2): every register but ICR is 32 bits wide
        (bits 63:32 reserved), and the ESR and EOI take only 0 (Table 10-6)."""
        self._require_x2apic(msr)
        offset = offset_of_msr(msr)
        if offset != Reg.ICR_LOW and value >> 32:
            raise GeneralProtection(f"x2APIC MSR {msr:#x}: bits 63:32 are reserved")
        if offset in (Reg.ESR, Reg.EOI) and value != 0:
            raise GeneralProtection(f"x2APIC MSR {msr:#x} takes only 0")
        if offset not in _X2APIC_WRITABLE:
            raise GeneralProtection(f"x2APIC MSR {msr:#x} is not writable")

    def write_msr(self, msr: int, value: int, now: int) -> tuple[Effect, ...]:
        """WRMSR of IA32_TSC_DEADLINE or an x2APIC register (after `check_msr_write`'s #GP
        rules); returns the effects the write causes."""
        if msr == IA32_TSC_DEADLINE:
            # §10.5.4.1: writes are ignored unless the timer is in TSC-deadline mode.
            if self.timer_mode == TIMER_TSC_DEADLINE:
                self.tsc_deadline = value
                return (TimerChanged(),)
            return ()
        self.check_msr_write(msr, value)
        return self.write(offset_of_msr(msr), value, now)

    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.initial_id, self.apic_id, self.bus_hz, self.x2apic, self.tpr, self.ldr,
                self.dfr, self.svr, self.esr, self.esr_pending, self.error_armed, self.icr,
                self.irr, self.isr, self.tmr, self.lvt, dict(self.lvt), self.timer_initial,
                self.timer_divide, self.timer_start_ns, self.timer_ran_out, self.tsc_deadline)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.initial_id, self.apic_id, self.bus_hz, self.x2apic, self.tpr, self.ldr, self.dfr,
         self.svr, self.esr, self.esr_pending, self.error_armed, self.icr, self.irr, self.isr,
         self.tmr, lvt, entries, self.timer_initial, self.timer_divide, self.timer_start_ns,
         self.timer_ran_out, self.tsc_deadline) = saved
        lvt.clear()
        lvt.update(entries)
        self.lvt = lvt

