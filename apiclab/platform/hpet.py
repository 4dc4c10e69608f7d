"""An HPET comparator in periodic mode (IA-PC HPET spec 1.0a, §2.3.9), driving an IOAPIC pin.

Only what a clock source needs: a period, start and stop, and an edge on its interrupt route on
each expiry, programmed through the registers a guest writes (§2.3.5, §2.3.8): the general
configuration (ENABLE_CNF, LEG_RT_CNF), timer 0's configuration (Tn_INT_ENB_CNF, Tn_TYPE_CNF) and
its comparator. The IOAPIC routing itself is the caller's (`apiclab.arch.ioapic`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from apiclab.engine.core import Engine, Handle
from apiclab.engine.idle import IdleTicks

HPET_HZ: Final = 100_000_000  # QEMU's HPET counter runs at 100 MHz (hw/timer/hpet.c, HPET_CLK_PERIOD 10 ns)
NS_PER_TICK: Final = 1_000_000_000 // HPET_HZ
# Register offsets from the HPET base (spec §2.3.1, table 2).
GENERAL_CONFIG: Final = 0x010
TIMER0_CONFIG: Final = 0x100
TIMER0_COMPARATOR: Final = 0x108
ENABLE_CNF: Final = 1 << 0  # general configuration: the main counter runs, timers may interrupt
LEG_RT_CNF: Final = 1 << 1  # legacy replacement route: timer 0 to IOAPIC input 2
TN_INT_ENB_CNF: Final = 1 << 2  # timer n: interrupts enabled
TN_TYPE_CNF: Final = 1 << 3  # timer n: periodic
TN_VAL_SET_CNF: Final = 1 << 6  # timer n: the next comparator write sets the period (periodic mode)


class HpetComparator:
    def __init__(self, engine: Engine, pin: int, edge: Callable[[int], int | None]) -> None:
        """`edge(pin)` raises the interrupt; it may return `QuietSteps.run`'s verdict on it."""
        self.engine = engine
        self.pin = pin  # IOAPIC input: 2 in legacy-replacement routing (HPET spec §2.3.9.2.2)
        self.edge = edge
        self.period_ns = 0
        self._pending: Handle | None = None
        self.idle: IdleTicks | None = None  # set by the machine to skip ticks that change nothing
        self.general_config = 0
        self.timer0_config = 0
        self.comparator = 0  # the period, in counter ticks

    # --- the register window a guest programs ---------------------------------------------------


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.engine, self.pin, self.edge, self.period_ns, self._pending, self.idle,
                self.general_config, self.timer0_config, self.comparator)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.engine, self.pin, self.edge, self.period_ns, self._pending, self.idle,
         self.general_config, self.timer0_config, self.comparator) = saved

    def write(self, offset: int, value: int) -> None:
        """A guest store to the HPET page. The model counts from 0 when the counter is enabled, so
        a periodic timer 0 fires one comparator period after the write that completed its setup."""
        if offset == GENERAL_CONFIG:
            self.general_config = value & (ENABLE_CNF | LEG_RT_CNF)
        elif offset == TIMER0_CONFIG:
            self.timer0_config = value & (TN_INT_ENB_CNF | TN_TYPE_CNF)
        elif offset == TIMER0_COMPARATOR:
            self.comparator = value
        else:
            return
        armed = (
            self.general_config & ENABLE_CNF
            and self.timer0_config & TN_INT_ENB_CNF
            and self.timer0_config & TN_TYPE_CNF
            and self.comparator > 0
        )
        if not armed:
            self.stop()
        elif not self.running or self.period_ns != self.comparator * NS_PER_TICK:
            self.start_periodic(self.comparator * NS_PER_TICK)

    def read(self, offset: int) -> int:
        return {GENERAL_CONFIG: self.general_config, TIMER0_CONFIG: self.timer0_config,
                TIMER0_COMPARATOR: self.comparator}.get(offset, 0)

    def reset(self) -> None:
        """A system reset: the timer stops and its registers return to 0 (spec §2.3.5)."""
        self.stop()
        self.general_config = self.timer0_config = self.comparator = 0

    def start_periodic(self, period_ns: int) -> None:
        if period_ns <= 0:
            raise ValueError("HPET period must be positive")
        self.stop()
        self.period_ns = period_ns
        self._pending = self.engine.after(period_ns, self._tick)

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    @property
    def running(self) -> bool:
        return self._pending is not None

    def _tick(self) -> None:
        idle = self.idle
        horizon = idle.horizon() if idle is not None else None
        self._pending = self.engine.after(self.period_ns, self._tick)
        if horizon is None:
            self.edge(self.pin)
            return
        assert idle is not None
        skipped = idle.tick(self._edge, self.period_ns, horizon, verdict=True)
        if skipped:
            self._pending.cancel()
            self._pending = self.engine.after((skipped + 1) * self.period_ns, self._tick)

    def _edge(self) -> int | None:
        return self.edge(self.pin)
