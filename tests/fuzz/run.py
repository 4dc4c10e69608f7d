"""`make fuzz`: every parser with >= 10,000 generated inputs; prints inputs, crashes and hangs.

A crash is any exception other than apiclab's own errors (or a failed check of what a parse
promises); a hang is an input without an answer within fuzz_targets.HANG_S. The first input of
each kind is printed so it can be turned into a test. Exit status 1 if any parser crashed or hung.

    python tests/fuzz/run.py [--examples N] [--seed S] [TARGET ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

from fuzz_targets import TARGETS, Hang, guarded
from hypothesis import HealthCheck, Phase, given, seed, settings


@dataclass
class Tally:
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    first: list[str] = field(default_factory=list)


def fuzz(name: str, examples: int, rng_seed: int) -> Tally:
    target, tally = TARGETS[name], Tally()

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def drive(value: Any) -> None:
        tally.inputs += 1
        try:
            guarded(target.run, value)
        except Hang:
            tally.hangs += 1
            if len(tally.first) < 3:
                tally.first.append(f"hang: {value!r:.300}")
        except Exception:  # counted, not raised, so generation goes on to the full count
            tally.crashes += 1
            if len(tally.first) < 3:
                tally.first.append(f"crash: {value!r:.300}\n{traceback.format_exc(limit=-3)}")

    drive()
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per parser")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], metavar="TARGET",
                        help=f"parsers to fuzz (default all: {', '.join(TARGETS)})")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Hypothesis' notes on large reprs are not findings
    print(f"{'parser':<18} {'inputs':>7} {'crashes':>8} {'hangs':>6} {'seconds':>8}")
    failed = False
    for name in args.targets or TARGETS:
        start = time.monotonic()
        tally = fuzz(name, args.examples, args.seed)
        print(f"{name:<18} {tally.inputs:>7} {tally.crashes:>8} {tally.hangs:>6} "
              f"{time.monotonic() - start:>8.1f}", flush=True)
        for line in tally.first:
            print("  " + line.replace("\n", "\n  "))
        failed |= bool(tally.crashes or tally.hangs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
