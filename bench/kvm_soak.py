"""Many real-KVM runs in one process: does anything leak (file descriptors, memory, threads,
tracefs instances)?

Each run is a whole KvmBackend.run: a fresh VM with its memory, irqchip and vCPU, the guest, and
every fd and mapping released. The runs cycle through the paths a long `conform --random` or
`explore` session takes: a short guest in each mode (most runs), every built-in conformance case,
the KVM_SET_LAPIC images of `kvm reproduce`, runs with tracepoints captured in a private tracefs
instance, and runs stopped by the wall-clock time-out (the SIGUSR1 kick). Every `--every` runs it
samples the open fds (/proc/self/fd), the resident set (/proc/self/status VmRSS) and the threads,
and prints a line; at the end, start against end. The start sample is taken after one warm-up run
of each kind (imports, caches, the first VM's kernel allocations).

Exit status 1 when fds, threads or tracefs instances are left over at the end; RSS is reported,
not judged (the allocator keeps freed memory).

    python bench/kvm_soak.py [--runs 10000] [--every 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from apiclab.arch.registers import Reg
from apiclab.backends.base import BackendUnavailable, RunResult
from apiclab.backends.kvm.backend import KvmBackend, open_kvm
from apiclab.backends.kvm.tracefs import TRACEFS, TraceUnavailable
from apiclab.conform.case import builtin_dir, load_dir
from apiclab.guest.program import Cli, Hlt, Mode, Program, Read, Write
from apiclab.scenarios.kvm_cases import cases as kvm_cases

TIMEOUT_RUN_S = 0.2  # a guest that never ends: the time-out path (after the agent's first record)


@dataclass(frozen=True)
class Sample:
    runs: int
    seconds: float
    fds: int
    rss_kib: int
    threads: int
    instances: int

    def line(self) -> str:
        return (f"{self.runs:>7} runs {self.seconds:8.1f} s  fds {self.fds:>3}  "
                f"RSS {self.rss_kib / 1024:7.1f} MiB  threads {self.threads}  "
                f"tracefs instances {self.instances}")


def sample(runs: int, start: float) -> Sample:
    rss = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    try:
        instances = sum(1 for name in os.listdir(TRACEFS / "instances")
                        if name.startswith(f"apiclab-{os.getpid()}-"))
    except OSError:
        instances = 0
    return Sample(runs, time.monotonic() - start, len(os.listdir("/proc/self/fd")), rss,
                  threading.active_count(), instances)


def run_kinds(wait_ms: int, trace: bool) -> list[tuple[str, Callable[[], RunResult]]]:
    """The kinds of run, each a zero-argument call; the order they cycle in."""
    plain, traced = KvmBackend(), KvmBackend(trace_events=True)
    with open_kvm() as kvm, kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        tsc_hz = vcpu.get_tsc_khz() * 1000
    short = {mode: Program((Write(Reg.SVR, 0x1FF), Read(Reg.PPR)), mode=mode)
             for mode in Mode}
    hang = Program((Cli(), Hlt()))
    kinds: list[tuple[str, Callable[[], RunResult]]] = [
        (f"short-{mode}", partial(plain.run, program)) for mode, program in short.items()]
    kinds += [(f"case-{c.name}", partial(plain.run, c.program)) for c in load_dir(builtin_dir())]
    kinds += [(f"image-{c.name}", partial(plain.run, c.program, lapic_image=c.image))
              for c in kvm_cases(wait_ms, tsc_hz)]
    kinds.append(("timeout", partial(plain.run, hang, timeout_s=TIMEOUT_RUN_S)))
    if trace:
        kinds.append(("traced", partial(traced.run, short[Mode.X2APIC_REAL])))
    return kinds


def schedule(kinds: list[tuple[str, Callable[[], RunResult]]]) -> list[int]:
    """One cycle of run kinds: the short runs make up most of it; each other kind runs once."""
    shorts = [i for i, (name, _) in enumerate(kinds) if name.startswith("short-")]
    others = [i for i in range(len(kinds)) if i not in shorts]
    cycle: list[int] = []
    for i in others:
        cycle += [*shorts, *shorts, i]
    return cycle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="sample every N runs")
    parser.add_argument("--wait-ms", type=int, default=5, help="clock wait of the image runs")
    args = parser.parse_args(argv)
    try:
        kinds = run_kinds(args.wait_ms, trace=True)
        kinds[-1][1]()
    except BackendUnavailable as e:
        print(f"kvm_soak: {e}", file=sys.stderr)
        return 2
    except TraceUnavailable as e:
        print(f"kvm_soak: no tracepoints ({e}); soaking without the traced runs")
        kinds = run_kinds(args.wait_ms, trace=False)
    for _, run in kinds:  # warm-up: one of each
        run()
    cycle = schedule(kinds)
    counts = [0] * len(kinds)
    timed_out = 0
    start = time.monotonic()
    first = sample(0, start)
    print(f"{len(kinds)} kinds of run, a cycle of {len(cycle)}; pid {os.getpid()}")
    print(first.line())
    last = first
    for n in range(1, args.runs + 1):
        kind = cycle[(n - 1) % len(cycle)]
        result = kinds[kind][1]()
        counts[kind] += 1
        timed_out += result.timed_out
        if n % args.every == 0 or n == args.runs:
            last = sample(n, start)
            print(last.line(), flush=True)
    growth = 100 * (last.rss_kib - first.rss_kib) / first.rss_kib
    print(f"start: fds {first.fds}, RSS {first.rss_kib / 1024:.1f} MiB, threads "
          f"{first.threads}; end after {last.runs} runs in {last.seconds:.0f} s "
          f"({last.runs / last.seconds:.1f} runs/s): fds {last.fds}, RSS "
          f"{last.rss_kib / 1024:.1f} MiB ({growth:+.1f} %), threads {last.threads}, "
          f"tracefs instances {last.instances}")
    traced = sum(c for (name, _), c in zip(kinds, counts, strict=True) if name == "traced")
    print(f"runs: {sum(counts) - traced - timed_out} to the guest's end, {timed_out} stopped by "
          f"the time-out, {traced} with tracepoints")
    leaked = last.fds > first.fds or last.threads > first.threads or last.instances
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
