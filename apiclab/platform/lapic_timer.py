"""The local APIC timer in time (SDM §10.5.4): one-shot, periodic and TSC-deadline modes.

The register rules (divide, modes, masks, current count) are in `apiclab.arch.lapic`; this device
only turns them into scheduled expirations on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiclab.arch.lapic import TIMER_PERIODIC, TIMER_TSC_DEADLINE, LocalApic
from apiclab.engine.core import Engine, Handle
from apiclab.engine.idle import IdleTicks, QuietSteps
from apiclab.platform.tsc import Tsc


class LapicTimer:
    def __init__(
        self, engine: Engine, lapic: LocalApic, tsc: Tsc, fire: Callable[[int], None]
    ) -> None:
        self.engine = engine
        self.lapic = lapic
        self.tsc = tsc
        self.fire = fire  # called with the LVT vector when the timer interrupts
        self._pending: Handle | None = None
        self.idle: IdleTicks | None = None  # set by the machine to skip ticks that change nothing
        # set by the machine to skip periodic interrupts known to change nothing (a periodic
        # expiry changes nothing before it fires: its re-arm leaves the timer armed)
        self.quiet: QuietSteps | None = None

    def rearm(self) -> None:
        """Re-read the timer registers and schedule the next expiry (after any register write)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        lapic = self.lapic
        if lapic.timer_mode == TIMER_TSC_DEADLINE:
            if lapic.tsc_deadline:
                self._pending = self.engine.at(self.tsc.ns_at(lapic.tsc_deadline), self._expire)
            return
        if lapic.timer_initial == 0 or lapic.timer_ran_out:
            # §10.5.4: an initial count of 0 stops the timer, and a one-shot count that reached 0
            # stays there until the next initial-count write, even if the mode becomes periodic
            return
        period = round(lapic.timer_initial * lapic.ns_per_count())
        due = lapic.timer_start_ns + period
        if lapic.timer_mode == TIMER_PERIODIC and due <= self.engine.now:
            elapsed = self.engine.now - lapic.timer_start_ns
            due = lapic.timer_start_ns + (elapsed // period + 1) * period
        elif due < self.engine.now:
            return  # a one-shot count that already ran out does not fire again
        self._pending = self.engine.at(due, self._expire)

    def _expire(self) -> None:
        self._pending = None
        lapic = self.lapic
        horizon = self.idle.horizon() if self.idle is not None else None
        vector = lapic.timer_fire()
        period = 0
        if lapic.timer_mode == TIMER_TSC_DEADLINE:
            lapic.tsc_deadline = 0  # §10.5.4.1: the timer disarms and clears the MSR
        elif lapic.timer_mode == TIMER_PERIODIC and lapic.timer_initial:
            period = round(lapic.timer_initial * lapic.ns_per_count())
            self._pending = self.engine.after(period, self._expire)
        else:
            lapic.timer_ran_out = True
        if vector < 0:
            return
        if not period or self.idle is None:
            self.fire(vector)
            return
        quiet = self.quiet
        if quiet is not None:
            skipped = self.idle.tick(lambda: quiet.run(("lapic-timer", vector), self.fire, vector), period,
                                     horizon, verdict=True)
        else:
            skipped = self.idle.tick(lambda: self.fire(vector), period, horizon)
        if skipped and self._pending is not None:
            self._pending.cancel()
            self._pending = self.engine.after((skipped + 1) * period, self._expire)

    @property
    def armed(self) -> bool:
        return self._pending is not None

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.engine, self.lapic, self.tsc, self.fire, self._pending, self.idle,
                self.quiet)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.engine, self.lapic, self.tsc, self.fire, self._pending, self.idle,
         self.quiet) = saved

