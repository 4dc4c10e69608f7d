"""The guest of `apiclab kvm storm`: one boot-run-reboot cycle of the seed's scenario as an agent
program, run again from the reset vector after every reboot in place.

The seed's storm (apiclab.scenarios.win7_reboot) scaled from seconds to microseconds so that a
reboot costs about a millisecond on real KVM; the interrupt sources are the guest's own, as there:

  firmware   interrupts on while it waits on its timers, then off (SeaBIOS; docs/design.md §4)
  HAL        phase-0 clock init: APIC on (SVR), TPR 0, LAPIC timer periodic at the clock vector
             0xD1, STI, wait for one tick under a TSC deadline, else bug-check 0x5C (0x10B, 3)
  Windows    runs with the clock ticking and takes an IPI (0xE1) and device interrupts (self-IPIs
             through the x2APIC SELF IPI register, SDM §10.12.11) in its idle loop (HLT, which
             wakes on each interrupt); every handler EOIs
  reboot     CLI, then the vectors of `--pending` arrive (self-IPIs with IF = 0: they stay
             pending in IRR at the reset, as an IPI landing after the shutdown's CLI does), then
             the write that ends the run: the host's reset follows

A vector pending at the reset has a handler that does not EOI and logs its entry, as the early
boot IDT's stubs do: if it survived the reset it would be seen in service and block the clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from apiclab.arch.registers import Reg
from apiclab.guest.program import (
    BugcheckIfTimeout,
    Cli,
    End,
    Handler,
    Hlt,
    Mode,
    Pause,
    Program,
    Step,
    Sti,
    Wait,
    Write,
)
from apiclab.scenarios.kvm_cases import (
    BUGCHECK_CLOCK_INTERRUPT_NOT_RECEIVED,
    CLOCK_SOURCE_INDEX,
    CLOCK_VECTOR,
    DIVIDE_BY_1,
    HAL_CLOCK_PARAM,
    LVT_TIMER_PERIODIC,
    STALE_VECTOR,
)
from apiclab.scenarios.win7_reboot import DEVICE_VECTORS

IPI_VECTOR = STALE_VECTOR  # 0xE1, Windows' IPI vector in the seed
CLOCK_PERIOD_NS = 100_000  # 100 us: the 64 Hz clock of the seed, scaled
FIRMWARE_US = 20  # interrupts on in the firmware's wait
IDLE_HLTS = 3  # Windows idles (STI; HLT) through this many interrupts before it reboots
DEFAULT_WAIT_MS = 50  # the phase-0 clock wait's TSC deadline (Windows: 3000); this host's KVM takes
# a pending tick up to ~10 ms late under load (docs/conform.md), so 10 ms would fail healthy boots
TRAFFIC = (IPI_VECTOR, DEVICE_VECTORS[0], DEVICE_VECTORS[3], DEVICE_VECTORS[-1])


def storm_program(tsc_hz: int, *, pending: Sequence[int] = (), wait_ms: int = DEFAULT_WAIT_MS,
                  log_clock: bool = False) -> Program:
    """One reboot cycle as an agent program (module docstring). `pending` vectors arrive after
    the shutdown's CLI; `log_clock` logs each clock interrupt (slower: one line per tick)."""
    if wait_ms <= 0:
        raise ValueError(f"wait must be a positive number of milliseconds, got {wait_ms}")
    for vector in pending:
        if not 0x10 <= vector <= 0xFF or vector == CLOCK_VECTOR:
            raise ValueError(f"pending vector {vector:#x} must be 0x10-0xff and not the clock "
                             f"{CLOCK_VECTOR:#x}")
    us = tsc_hz // 1_000_000
    traffic = [v for v in TRAFFIC if v not in pending]
    steps: list[Step] = [
        Sti(), Pause(FIRMWARE_US * us), Cli(),
        Write(Reg.SVR, 0x1FF),  # software-enable, spurious 0xFF (SDM §10.9)
        Write(Reg.TPR, 0),
        Write(Reg.TIMER_DIVIDE, DIVIDE_BY_1),
        Write(Reg.LVT_TIMER, LVT_TIMER_PERIODIC | CLOCK_VECTOR),
        Write(Reg.TIMER_INITIAL, CLOCK_PERIOD_NS),  # KVM's APIC bus: 1 count per ns
        Sti(),
        Wait(CLOCK_VECTOR, tsc_hz * wait_ms // 1000),
        BugcheckIfTimeout(BUGCHECK_CLOCK_INTERRUPT_NOT_RECEIVED,
                          (HAL_CLOCK_PARAM, CLOCK_SOURCE_INDEX)),
        *(Write(Reg.SELF_IPI, v) for v in traffic),
        *(Hlt() for _ in range(IDLE_HLTS)),  # the idle loop: wake on each interrupt
        Cli(),
        *(Write(Reg.SELF_IPI, v) for v in pending),
        End(),
    ]
    handlers = {v: Handler(eoi=True, log=False) for v in traffic}
    handlers[CLOCK_VECTOR] = Handler(eoi=True, log=log_clock)
    handlers.update({v: Handler(eoi=False, log=True) for v in pending})
    return Program(tuple(steps), handlers, Handler(eoi=False, log=True), Mode.X2APIC_REAL)
