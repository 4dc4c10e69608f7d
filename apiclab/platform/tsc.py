"""The time-stamp counter, derived from the engine's ns clock at a fixed frequency."""

from __future__ import annotations

from typing import Final

NS_PER_S: Final = 1_000_000_000


class Tsc:
    def __init__(self, hz: int) -> None:
        if hz <= 0:
            raise ValueError(f"TSC frequency must be positive, got {hz}")
        self.hz = hz

    def read(self, now_ns: int) -> int:
        """RDTSC at `now_ns` (the TSC starts at 0 with the engine's clock)."""
        return now_ns * self.hz // NS_PER_S

    def ns_at(self, ticks: int) -> int:
        """The first ns at which the TSC reads at least `ticks`."""
        return -(-ticks * NS_PER_S // self.hz)
