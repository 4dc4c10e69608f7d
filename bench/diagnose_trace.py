"""How long `apiclab diagnose` takes on a large kvm trace: a 1,000,000-event tracefs text of two
vCPUs (clock ticks accepted, injected and EOIed, TPR writes, entries and exits) that ends in the
seed's state on vCPU 0 (0xE1 taken and never EOIed, the clock 0xD1 pending behind it).

Times the whole command in this process (read, parse, replay, verdicts, signatures, JSON) and
prints the figure; asserts nothing about speed.

    python bench/diagnose_trace.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from apiclab.cli.main import main

TASKS = ("CPU 0/KVM-4101", "CPU 1/KVM-4102")


def synthetic_trace(events: int) -> str:
    """`events` event lines; the last few leave 0xE1 in service on vCPU 0 and 0xD1 pending."""
    out = ["# tracer: nop", "#"]
    t = 1000.0
    cycle = (
        ("kvm_entry", "vcpu {c}, rip 0x1000 intr_info 0x00000000 error_code 0x00000000"),
        ("kvm_apic_accept_irq", "apicid {c} vec 209 (Fixed|edge)"),
        ("kvm_exit", "vcpu {c} reason EXTERNAL_INTERRUPT rip 0x1000 info1 0x0 info2 0x0 "
                     "intr_info 0x800000d1 error_code 0x00000000 requests 0x0"),
        ("kvm_inj_virq", "IRQ 0xd1"),
        ("kvm_apic", "apic_write APIC_TASKPRI = 0x0"),
        ("kvm_apic", "apic_write APIC_EOI = 0x0"),
        ("kvm_eoi", "apicid {c} vector 209"),
        ("kvm_msr", "msr_write 6e0 = 0x1234"),
    )
    tail = (
        (0, "kvm_apic_accept_irq", "apicid 0 vec 225 (Fixed|edge)"),
        (0, "kvm_inj_virq", "IRQ 0xe1"),
        (0, "kvm_apic_accept_irq", "apicid 0 vec 209 (Fixed|edge)"),
    )
    body = events - len(tail)
    for i in range(body):
        cpu = (i // len(cycle)) % 2
        event, fmt = cycle[i % len(cycle)]
        t += 0.000001
        out.append(f" {TASKS[cpu]:>16}  [00{cpu}] .....  {t:.6f}: {event}: {fmt.format(c=cpu)}")
    for cpu, event, msg in tail:
        t += 0.000001
        out.append(f" {TASKS[cpu]:>16}  [00{cpu}] .....  {t:.6f}: {event}: {msg}")
    return "\n".join(out) + "\n"


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="apiclab-bench-") as tmp:
        path = Path(tmp) / "kvm.trace"
        path.write_text(synthetic_trace(args.events))
        size = path.stat().st_size
        sink = io.StringIO()
        start, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(sink):
            code = main(["diagnose", str(path), "--json"])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    load = os.getloadavg()[0]
    verdict = "0xd1 held off by 0xe1" if '"blocking_vector": 225' in sink.getvalue() else "?"
    print(f"{args.events:,} events ({size / 1e6:.0f} MB of tracefs text): diagnosed in "
          f"{elapsed:.2f} s wall, {cpu:.2f} s CPU ({args.events / elapsed / 1e6:.2f} M events/s), "
          f"exit {code}, {verdict}; load average {load:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
