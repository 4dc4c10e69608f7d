"""The three `apiclab kvm reproduce` cases: the Windows phase-0 clock wait after three APIC images.

The guest program is hal!HalpWaitForPhase0ClockTick reduced to steps (docs/design.md §4):
program the LAPIC timer periodic at the clock vector 0xD1, enable interrupts, spin with a TSC
deadline until the clock handler has counted one tick, and bug-check 0x5C (0x10B, clock source
3, 0, 0) if it has not. The clock handler counts and EOIs; every other vector's handler counts and does not EOI
(early boot has no real handler for them). The wait is scaled from 3 s to `wait_ms`.

Images, each pushed with KVM_SET_LAPIC before the first instruction (QEMU's reboot path,
docs/design.md §3):
  clean-reset   the reset image: the tick arrives.
  stale-isr     ISR holds 0xE1 -- what delivering a stale RVI leaves behind (design.md §4, step 3);
                class 0xE >= 0xD blocks the clock: timeout, 0x5C.
  pending-irr   0xE1 pending in IRR, its handler does not EOI: the SDM says it is delivered,
                stays in service and blocks the clock the same way.
"""

from __future__ import annotations

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import Reg
from apiclab.executors.case import Case
from apiclab.executors.expect import Exact, ExpectedEvent
from apiclab.guest.program import (
    BugcheckIfTimeout,
    Cli,
    End,
    Handler,
    Mode,
    Program,
    Sti,
    Wait,
    Write,
)
from apiclab.hypervisor.machine import reset_image

CLOCK_VECTOR = 0xD1  # Windows x64 clock vector (docs/design.md §4, step 5)
STALE_VECTOR = 0xE1  # a class-0xE vector, e.g. an IPI pending at reboot
BUGCHECK_CLOCK_INTERRUPT_NOT_RECEIVED = 0x5C  # HAL_INITIALIZATION_FAILED
HAL_CLOCK_PARAM = 0x10B
CLOCK_SOURCE_INDEX = 3
TIMER_PERIOD_NS = 1_000_000  # LAPIC timer at divide 1 on KVM's 1 GHz APIC bus: 1 ms
LVT_TIMER_PERIODIC = 1 << 17  # SDM §10.5.1, LVT timer mode bits 18:17 = 01
DIVIDE_BY_1 = 0xB  # SDM §10.5.4, Figure 10-10
DEFAULT_WAIT_MS = 50


# The cases are the executors' `Case` (program + image + expectation); the expectation is what
# the SDM (and so the model) says of the outcome: the tick arrives, or the wait times out and
# the guest bug-checks 0x5C.
KvmCase = Case
TICK = (ExpectedEvent("interrupt", {"vector": Exact(CLOCK_VECTOR)}),
        ExpectedEvent("wait", {"vector": Exact(CLOCK_VECTOR), "outcome": Exact("done")}))
BUGCHECK = (ExpectedEvent("wait", {"vector": Exact(CLOCK_VECTOR), "outcome": Exact("timeout")}),
            ExpectedEvent("bugcheck", {"code": Exact(BUGCHECK_CLOCK_INTERRUPT_NOT_RECEIVED)}))


def clock_wait_program(wait_ms: int, tsc_hz: int, *, mode: Mode = Mode.X2APIC_REAL,
                       extra_handlers: dict[int, Handler] | None = None) -> Program:
    """The phase-0 clock wait with a deadline of `wait_ms` at `tsc_hz`."""
    if wait_ms <= 0:
        raise ValueError(f"wait must be a positive number of milliseconds, got {wait_ms}")
    ticks = tsc_hz * wait_ms // 1000
    steps = (
        Write(Reg.SVR, 0x1FF),  # software-enable, spurious vector 0xFF (§10.9)
        Write(Reg.TIMER_DIVIDE, DIVIDE_BY_1),
        Write(Reg.LVT_TIMER, LVT_TIMER_PERIODIC | CLOCK_VECTOR),
        Write(Reg.TIMER_INITIAL, TIMER_PERIOD_NS),
        Sti(),
        Wait(CLOCK_VECTOR, ticks),
        BugcheckIfTimeout(BUGCHECK_CLOCK_INTERRUPT_NOT_RECEIVED,
                          (HAL_CLOCK_PARAM, CLOCK_SOURCE_INDEX)),
        Cli(),
        End(),
    )
    handlers = {CLOCK_VECTOR: Handler(eoi=True, log=True), **(extra_handlers or {})}
    return Program(steps, handlers, Handler(eoi=False, log=True), mode)


def stale_isr_image(vector: int = STALE_VECTOR) -> LapicState:
    image = reset_image()
    image.isr = 1 << vector
    return image


def pending_irr_image(vector: int = STALE_VECTOR) -> LapicState:
    image = reset_image()
    image.irr = 1 << vector
    return image


def cases(wait_ms: int, tsc_hz: int, mode: Mode = Mode.X2APIC_REAL) -> list[Case]:
    plain = clock_wait_program(wait_ms, tsc_hz, mode=mode)
    no_eoi = clock_wait_program(wait_ms, tsc_hz, mode=mode,
                                extra_handlers={STALE_VECTOR: Handler(eoi=False, log=True)})
    stale = ExpectedEvent("interrupt", {"vector": Exact(STALE_VECTOR)})
    return [
        Case("clean-reset", "10.8.4", "reset image: the clock tick arrives", plain, TICK,
             image=reset_image()),
        Case("stale-isr", "10.8.3.1", f"ISR holds {STALE_VECTOR:#x} (a delivered stale RVI)",
             plain, BUGCHECK, image=stale_isr_image()),
        Case("pending-irr", "10.8.3.1",
             f"{STALE_VECTOR:#x} pending in IRR, its handler does not EOI", no_eoi,
             (stale, *BUGCHECK), image=pending_irr_image()),
    ]
