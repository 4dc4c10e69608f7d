"""The conformance suite's wall time: the whole suite (four backends at once) and each backend on
its own, with the emulators booted once per batch of cases (the agent's batch mode) and once per
case, in one run so the ratios compare like with like on a shared machine.

It also checks what the batch mode must keep: for each emulator, the outcome of every case
(agrees / differs / not-run) is the same batched as booted alone, and for KVM the same on one VM
reset between cases (apiclab.backends.kvm.reuse) as on a VM per case. Events can differ between
two runs of the same kind when a case races the host's clock (QEMU's TCG follows it; KVM injects
pending interrupts late, at some later exit), so the events are compared too and every case whose
events or outcome differ is named, not failed on.

    python bench/conform_speed.py [--skip-per-case]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from apiclab.conform.backends import BACKEND_NAMES, make_backend
from apiclab.conform.case import load_builtin
from apiclab.conform.runner import SuiteResult, run_suite


def timed(names: list[str], *, batched: bool) -> tuple[float, SuiteResult]:
    cases = load_builtin()
    backends = {name: make_backend(name) for name in names}
    start = time.monotonic()
    result = run_suite(cases, backends, batched=batched)
    return time.monotonic() - start, result


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-per-case", action="store_true",
                        help="only the batched figures (the per-case boots take a minute here)")
    args = parser.parse_args()
    cases = len(load_builtin())
    print(f"conform: {cases} cases; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    cpu0 = cpu_s()
    whole, result = timed(list(BACKEND_NAMES), batched=True)
    print(f"whole suite, four backends at once, batched: {whole:6.2f} s wall, "
          f"{cpu_s() - cpu0:6.2f} s CPU (apiclab and its emulators)")
    print(f"  available: {', '.join(n for n, a in result.backends.items() if a.available)}")
    if not args.skip_per_case:
        cpu0 = cpu_s()
        whole_single, single = timed(list(BACKEND_NAMES), batched=False)
        print(f"whole suite, one emulator process (VM) per case: {whole_single:6.2f} s wall, "
              f"{cpu_s() - cpu0:6.2f} s CPU   ratio {whole_single / whole:4.1f}x")
        _compare(result, single)
    print("each backend alone:")
    for name in BACKEND_NAMES:
        wall, _ = timed([name], batched=True)
        line = f"  {name:6} batched {wall:6.2f} s"
        if not args.skip_per_case and name in ("kvm", "qemu", "bochs"):
            per_case, _ = timed([name], batched=False)
            kind = "VM" if name == "kvm" else "process"
            line += f"   one {kind} per case {per_case:6.2f} s   ratio {per_case / wall:4.1f}x"
        print(line)
    return 0


def _compare(batched: SuiteResult, single: SuiteResult) -> None:
    for name in ("kvm", "qemu", "bochs"):
        if not batched.backends[name].available:
            continue
        outcomes = [c.case.name for c, s in zip(batched.cases, single.cases, strict=True)
                    if c.outcome(name) != s.outcome(name)]
        events = [c.case.name for c, s in zip(batched.cases, single.cases, strict=True)
                  if c.runs[name].events != s.runs[name].events]
        print(f"  {name}: outcomes batched == per {'VM' if name == 'kvm' else 'process'} for "
              f"{len(batched.cases) - len(outcomes)}/{len(batched.cases)} cases"
              + (f" (differ: {', '.join(outcomes)})" if outcomes else ""))
        print(f"  {name}: events equal for {len(batched.cases) - len(events)}/"
              f"{len(batched.cases)}" + (f" (differ: {', '.join(events)})" if events else ""))


if __name__ == "__main__":
    raise SystemExit(main())
