"""Reboot cycles per second through the whole model (engine, KVM vCPU, devices, Windows guest).

Each row runs the same seeded storm twice: traced (every event recorded and hashed, as
`reproduce --json` runs it for `trace_sha256`) and counting (nothing recorded; interrupts that
change nothing from a state seen before and clock ticks into a blocked vector skipped, as the
`reproduce` table runs it: `apiclab.engine.idle`). Both give the same counts; the ratio between
them is measured in the same process, so it holds on a loaded machine where the absolute figures
do not. The figures are cycles per second of wall clock and of CPU time (user + system of this
process: on a shared machine it says what the wall would be on an idle one), best of `--repeat`.

Rows: a healthy storm (kvm-3.19, and kvm-3.17 with APICv off: no cycle fails) and a failing one
(kvm-3.17 with APICv on restarts after each BSOD into the next: nearly every cycle fails, and a
failing cycle holds 3 s of phase-0 clock ticks).
"""

from __future__ import annotations

import argparse
import time

from apiclab.hypervisor.profiles import get_profile
from apiclab.scenarios.win7_reboot import run_storm

RUNS = (("kvm-3.19", True), ("kvm-3.17", False), ("kvm-3.17", True))


def cycles_per_second(
    name: str, apicv: bool, reboots: int, repeat: int, *, tracing: bool
) -> tuple[float, float, int]:
    """Cycles per second of wall clock and of CPU time (best of `repeat`), and the BSODs."""
    best = best_cpu = float("inf")
    bsods = 0
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = run_storm(
            get_profile(name), apicv=apicv, reboots=reboots, seed=1, tracing=tracing
        )
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        bsods = result.bsods
    return reboots / best, reboots / best_cpu, bsods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reboots", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{'profile':<10} {'APICv':<5} {'BSODs':>6} {'traced/s':>9} {'counting/s':>11} "
        f"{'speed-up':>9} {'traced/CPU-s':>13} {'counting/CPU-s':>15}"
    )
    for name, apicv in RUNS:
        traced, traced_cpu, bsods = cycles_per_second(
            name, apicv, args.reboots, args.repeat, tracing=True)
        counting, counting_cpu, same = cycles_per_second(
            name, apicv, args.reboots, args.repeat, tracing=False)
        assert same == bsods, "the counting run must count what the traced run counts"
        print(
            f"{name:<10} {'on' if apicv else 'off':<5} {bsods:>6} {traced:>9.0f} "
            f"{counting:>11.0f} {counting / traced:>8.1f}x {traced_cpu:>13.0f} "
            f"{counting_cpu:>15.0f}"
        )


if __name__ == "__main__":
    main()
