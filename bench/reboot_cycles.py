"""Reboot cycles per second through the whole model (engine, KVM vCPU, devices, Windows guest).

Each row runs the same seeded storm twice: traced (every event recorded and hashed, as
`reproduce --json` runs it for `trace_sha256`) and counting (nothing recorded; interrupts that
change nothing from a state seen before and clock ticks into a blocked vector skipped, as the
`reproduce` table runs it: `apiclab.engine.idle`). Both give the same counts; the ratio between
them is measured in the same process, so it holds on a loaded machine where the absolute figures
do not. The figures are cycles per second of wall clock and of CPU time (user + system of this
process: on a shared machine it says what the wall would be on an idle one), best of `--repeat`.

The model runs as compiled by mypyc when its native build is current (`make native`,
apiclab/native.py) and as Python otherwise; the bench runs each row in both, in two child
processes one after the other (one process cannot hold both), and prints the ratio.

`--instructions` counts instead, with valgrind's callgrind when it is installed (Debian
`valgrind`): the instructions one counting cycle costs (a run of N reboots less a run of none,
over N), in each model. A count does not move with the load of a shared machine, where the cycles
per second of one minute can be half those of the next.

Rows: a healthy storm (kvm-3.19, and kvm-3.17 with APICv off: no cycle fails) and a failing one
(kvm-3.17 with APICv on restarts after each BSOD into the next: nearly every cycle fails, and a
failing cycle holds 3 s of phase-0 clock ticks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

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


def rows(reboots: int, repeat: int) -> list[dict[str, float | int | str | bool]]:
    """Every row, in this process (as the model is loaded here: compiled or Python)."""
    out: list[dict[str, float | int | str | bool]] = []
    for name, apicv in RUNS:
        traced, traced_cpu, bsods = cycles_per_second(
            name, apicv, reboots, repeat, tracing=True)
        counting, counting_cpu, same = cycles_per_second(
            name, apicv, reboots, repeat, tracing=False)
        assert same == bsods, "the counting run must count what the traced run counts"
        out.append({"profile": name, "apicv": apicv, "bsods": bsods, "traced": traced,
                    "counting": counting, "traced_cpu": traced_cpu,
                    "counting_cpu": counting_cpu})
    return out


def child(mode: str, reboots: int, repeat: int) -> tuple[str, list[dict[str, Any]]]:
    """The rows measured in a child process with the model `mode` ("0": Python, "1": compiled
    if its build is current), and what the child ran."""
    env = {**os.environ, "APICLAB_NATIVE": mode}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--reboots", str(reboots), "--repeat", str(repeat)],
        env=env, capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return doc["model"], doc["rows"]


def instructions(mode: str, name: str, apicv: bool, reboots: int) -> int:
    """Instructions callgrind counts for one counting cycle in the model `mode`."""
    def run(n: int) -> int:
        env = {**os.environ, "APICLAB_NATIVE": mode}
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--storm", name, "--apicv" if apicv else "--no-apicv", "--reboots",
             str(n)], env=env, capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", out.stderr)
        assert match, out.stderr[-500:]
        return int(match.group(1))

    return (run(reboots) - run(0)) // reboots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reboots", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per cycle with callgrind (valgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storm", help=argparse.SUPPRESS)
    parser.add_argument("--apicv", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.storm:  # one counting storm, under callgrind
        if args.reboots:
            run_storm(get_profile(args.storm), apicv=args.apicv, reboots=args.reboots, seed=1,
                      tracing=False)
        return
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
        reboots = min(args.reboots, 1000)
        print(f"instructions per counting cycle (callgrind, {reboots} reboots less none)")
        print(f"{'profile':<10} {'APICv':<5} {'Python':>10} {'compiled':>10} {'ratio':>7}")
        for name, apicv in RUNS:
            python, compiled = (instructions(mode, name, apicv, reboots) for mode in "01")
            print(f"{name:<10} {'on' if apicv else 'off':<5} {python:>10,} {compiled:>10,} "
                  f"{compiled / python:>6.2f}x")
        return
    if args.child:
        from apiclab import native

        print(json.dumps({"model": native.status, "rows": rows(args.reboots, args.repeat)}))
        return
    _, python = child("0", args.reboots, args.repeat)
    model, compiled = child("1", args.reboots, args.repeat)
    print(f"reboot cycles per second, {args.reboots} reboots, best of {args.repeat}; "
          f"compiled: {model}")
    print(
        f"{'profile':<10} {'APICv':<5} {'BSODs':>6} {'traced/s':>9} {'counting/s':>11} "
        f"{'speed-up':>9} {'counting/CPU-s':>15} | {'compiled':>9} {'counting/s':>11} "
        f"{'vs Python':>9} {'counting/CPU-s':>15}"
    )
    for p, c in zip(python, compiled, strict=True):
        assert p["bsods"] == c["bsods"], "the compiled model must count what the Python one does"
        print(
            f"{p['profile']:<10} {'on' if p['apicv'] else 'off':<5} {p['bsods']:>6} "
            f"{p['traced']:>9.0f} {p['counting']:>11.0f} {p['counting'] / p['traced']:>8.1f}x "
            f"{p['counting_cpu']:>15.0f} | {c['traced']:>9.0f} {c['counting']:>11.0f} "
            f"{c['counting'] / p['counting']:>8.1f}x {c['counting_cpu']:>15.0f}"
        )


if __name__ == "__main__":
    main()
