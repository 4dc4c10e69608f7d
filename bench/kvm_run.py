"""Whole guest runs per second on the host's KVM: apiclab's Python VMM vs `qemu-system-x86_64
-accel kvm`, both booting the same agent ROM (the clean-reset clock-wait case) to the same result.

A run is everything from creating the VM to having the decoded result: for apiclab, KvmBackend.run
(VM, memory, irqchip, vCPU, KVM_SET_LAPIC, the guest, KVM_GET_LAPIC, decoding); for QEMU, starting
the process with the ROM as -bios, isa-debugcon on port 0xE9 into a file and isa-debug-exit on
0x501, until it exits, then decoding the same log. Prints figures; asserts nothing about speed.
Each apiclab figure is also printed as a ratio to its C floor (bench/kvm_floor.c: the same ioctls
for the same ROM and image, built with the machine's gcc), measured in alternating rounds.

    python bench/kvm_run.py [--runs 30] [--rounds 3] [--wait-ms 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvm_floor import floor_or_none

from apiclab.backends.kvm.backend import KvmBackend, open_kvm
from apiclab.backends.kvm.deviation import outcome
from apiclab.engine.events import fields_of
from apiclab.engine.trace import Trace
from apiclab.guest.agent import log
from apiclab.guest.agent.image import build_image
from apiclab.scenarios.kvm_cases import cases

# -cpu host fails here (QEMU cannot set MSR 0x10a on kvm_pvm); a plain model with the two
# features the agent needs works on any KVM.
QEMU_CPU = "qemu64,+x2apic,+tsc-deadline"


def qemu_argv(qemu: str, rom: Path, debug_log: Path) -> list[str]:
    return [qemu, "-accel", "kvm", "-cpu", QEMU_CPU, "-machine", "pc", "-m", "16",
            "-bios", str(rom), "-display", "none", "-nodefaults", "-no-user-config",
            "-monitor", "none", "-serial", "none",
            "-chardev", f"file,id=dbg,path={debug_log}",
            "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
            "-device", "isa-debug-exit,iobase=0x501,iosize=1"]


def kinds(trace: Trace) -> list[str]:
    return [e.kind for e in trace.guest_visible()]


def result_of(trace: Trace) -> tuple[str, list[dict[str, object]]]:
    """What must agree: the outcome and the wait/bugcheck events (how many extra periodic ticks
    land while the agent writes its last lines depends on each VMM's exit cost)."""
    # the wait's tick count too: a second tick can land before the agent's loop sees the first
    decisive = [{"kind": e.kind, **{k: v for k, v in fields_of(e).items() if k != "count"}}
                for e in trace.of_kind("wait", "bugcheck")]
    return outcome(trace), decisive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait-ms", type=int, default=50)
    parser.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "")
    args = parser.parse_args(argv)

    with open_kvm() as kvm, kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        tsc_khz = vcpu.get_tsc_khz()
    case = cases(args.wait_ms, tsc_khz * 1000)[0]  # clean-reset: ends at the first tick
    backend = KvmBackend()

    backend.run(case.program, lapic_image=case.image)  # warm up
    floor = floor_or_none("no C floor: ")
    rates: list[float] = []
    ratios: list[float] = []
    for r in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.runs):
            result = backend.run(case.program, lapic_image=case.image)
        rate = args.runs / (time.perf_counter() - start)
        rates.append(rate)
        line = f"round {r + 1}: apiclab {1000 / rate:6.2f} ms per run"
        if floor is not None:
            c = floor.run("whole", build_image(case.program), case.image.encode(), args.runs)
            c_ms = 1000 * c["seconds"] / c["runs"]
            ratios.append(1000 / rate / c_ms)
            line += (f", C floor {c_ms:6.2f} ms per run (tick {c['tick']}/{c['runs']}): "
                     f"{ratios[-1]:.2f}x the floor")
        print(line)
    if floor is not None:
        floor.close()
    ours = statistics.median(rates)
    expected = kinds(result.trace)
    print(f"apiclab KvmBackend: {ours:7.1f} runs/s ({1000 / ours:6.2f} ms per run), "
          f"outcome {outcome(result.trace)}, events {expected}")
    if ratios:
        print(f"whole run / C floor: median {statistics.median(ratios):.2f}x (target <= 1.25x)")

    if not args.qemu:
        print("qemu-system-x86_64 not found: no comparison")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rom, debug_log = Path(tmp) / "agent.rom", Path(tmp) / "e9.log"
        rom.write_bytes(build_image(case.program))
        argv_q = qemu_argv(args.qemu, rom, debug_log)
        start = time.perf_counter()
        for _ in range(args.runs):
            debug_log.unlink(missing_ok=True)
            proc = subprocess.run(argv_q, capture_output=True, timeout=30, check=False)
            if proc.returncode != 1:  # isa-debug-exit: status (0 << 1) | 1
                print(f"qemu failed ({proc.returncode}): {proc.stderr.decode().strip()}")
                return 1
            qtrace = log.decode(debug_log.read_bytes(), tsc_khz)
        theirs = args.runs / (time.perf_counter() - start)
    same = result_of(qtrace) == result_of(result.trace)
    print(f"qemu -accel kvm:    {theirs:7.1f} runs/s ({1000 / theirs:6.2f} ms per run), "
          f"outcome {outcome(qtrace)}, events {kinds(qtrace)}")
    print(f"same result: {'yes' if same else 'NO'}; apiclab / qemu = {ours / theirs:.1f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
