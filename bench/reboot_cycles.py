"""Reboot cycles per second through the whole model (engine, KVM vCPU, devices, Windows guest).

Each profile runs the same seeded storm; the figure is wall-clock cycles per second, best of
`--repeat` runs, and each is shown as a ratio to the fixed profile (kvm-3.19) measured in the same
process, since a failing cycle costs more (3 s of virtual clock ticks before the bugcheck).
"""

from __future__ import annotations

import argparse
import time

from apiclab.hypervisor.profiles import get_profile
from apiclab.scenarios.win7_reboot import run_storm

RUNS = (("kvm-3.19", True), ("kvm-3.17", True), ("kvm-3.17", False))


def cycles_per_second(name: str, apicv: bool, reboots: int, repeat: int) -> tuple[float, int]:
    best = float("inf")
    bsods = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = run_storm(get_profile(name), apicv=apicv, reboots=reboots, seed=1)
        best = min(best, time.perf_counter() - start)
        bsods = result.bsods
    return reboots / best, bsods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reboots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline = None
    print(f"{'profile':<10} {'APICv':<5} {'BSODs':>6} {'cycles/s':>10} {'vs kvm-3.19':>12}")
    for name, apicv in RUNS:
        rate, bsods = cycles_per_second(name, apicv, args.reboots, args.repeat)
        baseline = baseline or rate
        print(f"{name:<10} {'on' if apicv else 'off':<5} {bsods:>6} {rate:>10.0f} {rate / baseline:>11.2f}x")


if __name__ == "__main__":
    main()
