"""Figures for `apiclab explore`: runs per second, and the time to the first counterexample for
the seed's case (clock-tick under kvm-3.17 with APICv).

    .venv/bin/python bench/explore_search.py [--seeds 20] [--bound 4]

1. Runs per second of each scenario family, over a complete bounded search that finds nothing
   (reboot under kvm-3.19, snapshot under kvm-6.7), with and without duplicate-state pruning
   (best of three: the machine is shared).
2. The seed's case as `apiclab explore` runs it (exhaustive, simplest first): runs and seconds to
   the first counterexample, then shrinking.
3. The same with the bound at 0 (random search only, one run per seed 0..N-1 of the random phase):
   median and worst runs and seconds to the first counterexample, and the shrinker's cost.
"""

from __future__ import annotations

import argparse
import platform
import statistics

from apiclab.explore.families import FAMILIES
from apiclab.explore.properties import BUILTIN
from apiclab.explore.search import Executor, SearchResult, search
from apiclab.hypervisor.profiles import PROFILES


def explore(prop: str, profile: str, apicv: bool = True, **kw: object) -> SearchResult:
    p = BUILTIN[prop]
    executor = Executor(FAMILIES[p.family], p, PROFILES[profile], apicv)
    return search(executor, **kw)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bound", type=int, default=4)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {platform.machine()}\n")

    print(f"1. complete searches without a violation (bound {args.bound}, no random phase, "
          "best of 3)")
    for prop, profile in (("clock-tick", "kvm-3.19"), ("restored-timer-fires", "kvm-6.7")):
        for prune in (True, False):
            r = min(
                (explore(prop, profile, bound=args.bound, random_runs=0, prune=prune)
                 for _ in range(3)),
                key=lambda result: result.coverage.seconds,
            )
            c = r.coverage
            print(
                f"   {BUILTIN[prop].family:<9} {profile:<9} pruning {'on ' if prune else 'off'}: "
                f"{c.runs:>6} runs, {c.states:>4} states, {c.seconds:6.2f} s, "
                f"{c.runs / c.seconds:8.0f} runs/s"
            )

    print("\n2. the seed's case as `apiclab explore --property clock-tick --profile kvm-3.17` runs it")
    r = explore("clock-tick", "kvm-3.17", bound=args.bound, random_runs=500)
    ce = r.counterexample
    assert ce is not None
    print(
        f"   first counterexample after {ce.runs_to_first} runs, {ce.seconds_to_first * 1000:.0f} ms: "
        f"{ce.found.choices}; shrink: {ce.shrink_runs} runs -> {ce.minimal.choices}; "
        f"total {r.coverage.seconds * 1000:.0f} ms"
    )

    print(f"\n3. random search only (bound 0), seeds 0..{args.seeds - 1}")
    runs, secs, shrink_runs, minimal = [], [], [], set()
    for seed in range(args.seeds):
        r = explore("clock-tick", "kvm-3.17", bound=0, random_runs=10_000, seed=seed)
        ce = r.counterexample
        assert ce is not None
        runs.append(ce.runs_to_first)
        secs.append(ce.seconds_to_first)
        shrink_runs.append(ce.shrink_runs)
        minimal.add(tuple(ce.minimal.choices))
    print(
        f"   runs to first counterexample: median {statistics.median(runs):.0f}, max {max(runs)}; "
        f"seconds: median {statistics.median(secs) * 1000:.0f} ms, max {max(secs) * 1000:.0f} ms"
    )
    print(
        f"   shrinking: median {statistics.median(shrink_runs):.0f} runs; minimal forms reached: "
        f"{sorted(list(m) for m in minimal)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
