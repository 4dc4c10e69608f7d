"""Figures for `apiclab conform --random`: programs per second on each backend, alone and together.

    .venv/bin/python bench/conform_random.py [--programs 40] [--seed 0]

For each available backend, runs the first N random programs of the seed one after another and
prints programs per second (the cost of one run: a VM or an emulator process boot, the program,
the log decode). Then runs the whole differential campaign (model + every real backend, the
emulators two at a time on a thread pool) over the same programs and prints its overall rate, which
is what `apiclab conform --random N` achieves before shrinking.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from apiclab.conform.backends import BACKEND_NAMES, make_backend
from apiclab.conform.differential import campaign, events_of
from apiclab.conform.generate import random_program


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    programs = [random_program(args.seed, i)[0] for i in range(args.programs)]
    print(f"{args.programs} random programs, seed {args.seed}; {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    backends = {}
    for name in BACKEND_NAMES:
        backend = make_backend(name)
        avail = backend.availability()
        if not avail.available:
            print(f"  {name:<6} not available: {avail.detail}")
            continue
        backends[name] = backend
        start = time.monotonic()
        for program in programs:
            events_of(backend, program)
        elapsed = time.monotonic() - start
        print(f"  {name:<6} {args.programs / elapsed:8.1f} programs/s alone "
              f"({1000 * elapsed / args.programs:.1f} ms a program)  [{avail.detail}]")
    if "model" in backends:
        reals = {n: b for n, b in backends.items() if n != "model"}
        _stats, found, wall = campaign(args.programs, args.seed, backends["model"], reals)
        print(f"  campaign (model + {', '.join(reals)}): {args.programs / wall:.1f} programs/s "
              f"overall, {len(found)} disagreements before shrinking; "
              f"--random 1000 would take about {1000 * wall / args.programs:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
