"""An HPET comparator in periodic mode (IA-PC HPET spec 1.0a, §2.3.9), driving an IOAPIC pin.

Only what a clock source needs: a period, start and stop, and an edge on its interrupt route on
each expiry. The IOAPIC routing itself is the caller's (`apiclab.arch.ioapic`).
"""

from __future__ import annotations

from collections.abc import Callable

from apiclab.engine.core import Engine, Handle
from apiclab.engine.idle import IdleTicks

HPET_HZ = 100_000_000  # QEMU's HPET counter runs at 100 MHz (hw/timer/hpet.c, HPET_CLK_PERIOD 10 ns)


class HpetComparator:
    def __init__(self, engine: Engine, pin: int, edge: Callable[[int], None]) -> None:
        self.engine = engine
        self.pin = pin  # IOAPIC input: 2 in legacy-replacement routing (HPET spec §2.3.9.2.2)
        self.edge = edge
        self.period_ns = 0
        self._pending: Handle | None = None
        self.idle: IdleTicks | None = None  # set by the machine to skip ticks that change nothing

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
        horizon = self.idle.horizon() if self.idle is not None else None
        self._pending = self.engine.after(self.period_ns, self._tick)
        if self.idle is None:
            self.edge(self.pin)
            return
        skipped = self.idle.tick(lambda: self.edge(self.pin), self.period_ns, horizon)
        if skipped:
            self._pending.cancel()
            self._pending = self.engine.after((skipped + 1) * self.period_ns, self._tick)
