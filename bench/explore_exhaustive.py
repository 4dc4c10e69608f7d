"""Figures for `apiclab explore --exhaustive` on the seed's family (reboot, clock-tick, APICv on):
the counterexample before the fix as a whole process (wall clock, best of three, as a user runs
it, beside Python's own start), and the proof after the fix (states, transitions, depth, seconds),
beside the bounded search.

    .venv/bin/python bench/explore_exhaustive.py [--repeat 5]

Profiles come from the bug catalogue's entry for the seed's fix, whatever they are called.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from apiclab.explore.catalogue import CATALOGUE
from apiclab.explore.graph import explore_graph
from apiclab.explore.properties import BUILTIN
from apiclab.explore.scenarios.reboot_steps import RebootWorld
from apiclab.hypervisor.profiles import RESET_RVI, get_profile

APICLAB = str(Path(sys.executable).with_name("apiclab"))


def process_wall(args: list[str], repeat: int, *,
                 cached: bool = True) -> tuple[float, float, dict[str, object]]:
    """Best wall and best CPU (user + system) seconds of the whole process: on a shared machine
    the CPU time says what the wall would be on an idle one. `cached`: with the bytecode of every
    module compiled beforehand (in a private cache directory), as an installed apiclab starts;
    else compiled at every start, as under PYTHONDONTWRITEBYTECODE=1 with an editable install."""
    wall, cpu, out = _process([APICLAB, "explore", "--json", *args], repeat, cached=cached)
    return wall, cpu, json.loads(out)


_PYCACHE = tempfile.mkdtemp(prefix="apiclab-bench-pycache-")


def _process(argv: list[str], repeat: int, *, cached: bool = True) -> tuple[float, float, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if cached:
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
        subprocess.run(argv, capture_output=True, env=env, check=False)  # fills the cache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    best, best_cpu, out = float("inf"), float("inf"), ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best_cpu = min(best_cpu, after.ru_utime + after.ru_stime - before.ru_utime
                       - before.ru_stime)
        out = proc.stdout
    return best, best_cpu, out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    seed = next(e for e in CATALOGUE if e.commit == RESET_RVI.commit)
    base = ["--property", "clock-tick"]
    wall, cpu, doc = process_wall([*base, "--profile", seed.buggy, "--exhaustive"], args.repeat)
    ce, cov = doc["counterexample"], doc["coverage"]
    assert isinstance(ce, dict) and isinstance(cov, dict)
    print(f"1. {seed.buggy}, exhaustive: counterexample {ce['choices']} ({len(ce['steps'])} "
          f"steps) in {wall:.2f} s process wall, {cpu:.2f} s CPU (best of {args.repeat}; target "
          f"< 0.2 s wall); "
          f"search {cov['seconds']} s, {cov['states']} states, {cov['transitions']} transitions")
    floor_wall, floor_cpu, _ = _process([sys.executable, "-c", "pass"], args.repeat)
    print(f"   the floor, this Python starting and doing nothing: {floor_wall:.2f} s wall, "
          f"{floor_cpu:.2f} s CPU ({wall / floor_wall:.1f}x its wall)")
    wall_n, cpu_n, _ = process_wall([*base, "--profile", seed.buggy, "--exhaustive"],
                                    args.repeat, cached=False)
    print(f"   the same, every module compiled at start (PYTHONDONTWRITEBYTECODE=1): "
          f"{wall_n:.2f} s wall, {cpu_n:.2f} s CPU")
    wall_b, cpu_b, doc_b = process_wall([*base, "--profile", seed.buggy], args.repeat)
    print(f"   the bounded search, same question: {doc_b['counterexample']['choices']} in "  # type: ignore[index]
          f"{wall_b:.2f} s process wall, {cpu_b:.2f} s CPU")
    start, cpu_start = time.perf_counter(), time.process_time()
    result = explore_graph(RebootWorld, BUILTIN["clock-tick"], get_profile(seed.fixed), True,
                           family="reboot", budget=600)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    verdict = ("proven clean" if result.complete and result.counterexample is None
               else "NOT proven")
    print(f"2. {seed.fixed}, exhaustive: {verdict}: {result.states} states, "
          f"{result.transitions} transitions ({result.subsumed} revisits merged), depth "
          f"{result.depth} non-default choices / {result.max_steps} steps, {result.final_states} "
          f"final states, {seconds:.2f} s wall, {cpu:.2f} s CPU (target < 1 s)")
    shutil.rmtree(_PYCACHE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
