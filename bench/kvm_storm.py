"""Reboots in place per second on the host's KVM: `apiclab kvm storm`'s host side against its C
floor (bench/kvm_floor.c, the same ioctls for the same ROM) and against QEMU rebooting the same ROM
with `system_reset` over QMP; then a 10,000-reboot storm watching fds and RSS.

    python bench/kvm_storm.py [--reboots 150] [--rounds 7] [--qemu-resets 100] [--leak 10000]
                              [--breakdown 30]

Last, bench/kvm_storm_breakdown.py: where a reboot's time goes, from KVM's tracepoints.

The machine is shared: apiclab and the C floor alternate, round by round, and each figure is
printed with its ratio to the floor of the same round; the median of those ratios and the ratio
of the best rounds (the least disturbed) close the section. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvm_floor import floor_or_none
from kvm_storm_breakdown import main as breakdown_main

from apiclab.backends.kvm.backend import open_kvm
from apiclab.backends.kvm.storm import run_host_storm
from apiclab.backends.kvm.storm_guest import storm_program
from apiclab.engine.events import WaitDone
from apiclab.guest.agent import log
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import End, Handler, Program
from apiclab.hypervisor.machine import reset_image

QEMU_CPU = "qemu64,+x2apic,+tsc-deadline"  # as bench/kvm_run.py: -cpu host fails on kvm_pvm


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def qemu_reset_loop(qemu: str, rom: bytes, resets: int, tsc_khz: int) -> tuple[float, int]:
    """QEMU -accel kvm boots the ROM, then `system_reset` over QMP `resets` times, each waited
    for until the agent's end record: (reboots per second, ticks seen)."""
    from qemu.qmp.legacy import QEMUMonitorProtocol

    with tempfile.TemporaryDirectory(prefix="apiclab-qmp-") as tmp:
        rom_path, qmp_path, dbg_path = (Path(tmp) / n for n in ("rom.bin", "qmp.sock", "e9.sock"))
        rom_path.write_bytes(rom)
        dbg_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dbg_server.bind(str(dbg_path))
        dbg_server.listen(1)
        qmp = QEMUMonitorProtocol(str(qmp_path), server=True)
        argv = [qemu, "-accel", "kvm", "-cpu", QEMU_CPU, "-machine", "pc", "-m", "16",
                "-bios", str(rom_path), "-display", "none", "-nodefaults", "-no-user-config",
                "-serial", "none", "-monitor", "none", "-qmp", f"unix:{qmp_path}",
                "-chardev", f"socket,id=dbg,path={dbg_path}",
                "-device", "isa-debugcon,iobase=0xe9,chardev=dbg"]
        # no isa-debug-exit: the agent's exit write is ignored and it halts until the reset
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            qmp.accept(timeout=30)
            dbg, _ = dbg_server.accept()
            buf = bytearray()

            def until_end() -> None:
                while b"@E" not in buf or not buf.endswith(b"\n"):
                    chunk = dbg.recv(65536)
                    if not chunk:
                        raise RuntimeError("QEMU closed its debug console")
                    buf.extend(chunk)

            until_end()  # the first boot
            buf.clear()
            ticks = 0
            start = time.perf_counter()
            for _ in range(resets):
                qmp.cmd("system_reset")
                until_end()
                trace = log.decode(bytes(buf), tsc_khz)
                ticks += any(isinstance(e, WaitDone) and e.outcome == "done"
                             for e in trace.events)
                buf.clear()
            rate = resets / (time.perf_counter() - start)
            dbg.close()
        finally:
            proc.kill()
            proc.wait()
            with contextlib.suppress(EOFError):  # QEMU is gone, as it should be
                qmp.close()
            dbg_server.close()
    return rate, ticks


def leak_check(reboots: int) -> None:
    """A storm of `reboots` in place with the shortest agent program (boot, then END): the reset
    machinery as often as the time allows; fds and RSS sampled five times during the storm."""
    program = Program((End(),), {}, Handler(eoi=False, log=False))
    every = max(reboots // 5, 1)
    samples: list[tuple[int, int, int]] = []

    def sample(done: int) -> None:
        if done % every == 0:
            samples.append((done, fds(), rss_kib()))

    with open_kvm() as kvm:
        run_host_storm(kvm, program, 200)  # warm up: first-use allocations are not leaks
        before = (fds(), rss_kib())
        start = time.perf_counter()
        storm = run_host_storm(kvm, program, reboots, progress=sample)
        seconds = time.perf_counter() - start
        after = (fds(), rss_kib())
    print(f"\n3. {reboots} reboots in place of one VM (agent boot, then END): "
          f"{reboots / seconds:.0f} reboots/s, outcomes {dict(storm.outcomes)}")
    print(f"   before the storm: fds {before[0]}, RSS {before[1]} KiB")
    for done, f, r in samples:
        print(f"   after {done:>6} reboots: fds {f}, RSS {r} KiB")
    print(f"   after the storm: fds {after[0]}, RSS {after[1]} KiB "
          f"(fds {'flat' if len({s[1] for s in samples}) == 1 else 'NOT flat'} during the storm,"
          f" RSS {samples[-1][2] - samples[0][2]:+d} KiB from the first sample to the last)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reboots", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--qemu-resets", type=int, default=100)
    parser.add_argument("--leak", type=int, default=10_000)
    parser.add_argument("--breakdown", type=int, default=30,
                        help="reboots traced for the time breakdown (0: none)")
    parser.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "")
    args = parser.parse_args(argv)
    if not os.path.exists("/dev/kvm"):
        print("no /dev/kvm: nothing to measure")
        return 0
    with open_kvm() as kvm, kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:
        tsc_khz = vcpu.get_tsc_khz()
    program = storm_program(tsc_khz * 1000)
    rom, image = build_image(program), reset_image().encode()
    print(f"1. kvm storm, {args.reboots} reboots in place per run, {args.rounds} rounds; per "
          "round apiclab and its C floor alternate, the agent's log port coalesced (KVM queues "
          "its writes, inplace.py) and, for comparison, every log byte an exit (before)")
    floor = floor_or_none("   ")
    modes = ("coalesced", "exits")
    ours: dict[str, list[float]] = {m: [] for m in modes}
    theirs: dict[str, list[float]] = {m: [] for m in modes}
    with open_kvm() as kvm:
        for r in range(args.rounds):
            for mode in modes:
                line = f"   round {r + 1}, log {mode:9}: "
                if floor is not None:
                    c = floor.run("inplace", rom, image, args.reboots, mode)
                    theirs[mode].append(c["runs"] / c["seconds"])
                storm = run_host_storm(kvm, program, args.reboots,
                                       coalesce_log=mode == "coalesced")
                rate = args.reboots / storm.seconds
                ours[mode].append(rate)
                line += (f"apiclab {rate:6.0f} reboots/s ({1000 / rate:.2f} ms, "
                         f"{storm.exits / args.reboots:.0f} exits each, {dict(storm.outcomes)})")
                if floor is not None:
                    line += (f", C floor {theirs[mode][-1]:6.0f} reboots/s (tick {c['tick']}, "
                             f"{c['exits'] / c['runs']:.0f} exits); apiclab takes "
                             f"{theirs[mode][-1] / rate:.2f}x the floor's time")
                print(line)
    for mode in modes:
        mine = ours[mode]
        line = (f"   log {mode}: apiclab median {statistics.median(mine):.0f} reboots/s, best "
                f"{max(mine):.0f}")
        if floor is not None:
            floors = theirs[mode]
            ratios = [c / p for p, c in zip(mine, floors, strict=True)]
            line += (f"; C floor median {statistics.median(floors):.0f}, best {max(floors):.0f};"
                     f" time ratio to the floor: median {statistics.median(ratios):.2f}x, of "
                     f"the bests {max(floors) / max(mine):.2f}x")
        print(line)
    print(f"   coalesced / exits, apiclab: median {statistics.median(ours['coalesced']) / statistics.median(ours['exits']):.2f}x"
          f" (targets: >= 500 reboots/s, <= 1.25x the floor; load average "
          f"{os.getloadavg()[0]:.1f})")
    if floor is not None:
        floor.close()
    if args.qemu and args.qemu_resets:
        try:
            q_rate, ticks = qemu_reset_loop(args.qemu, rom, args.qemu_resets, tsc_khz)
        except (ImportError, OSError, RuntimeError) as e:
            print(f"\n2. QEMU system_reset loop: not measured ({e})")
        else:
            med = statistics.median(ours["coalesced"])
            print(f"\n2. QEMU -accel kvm, system_reset over QMP, {args.qemu_resets} reboots of "
                  f"the same ROM: {q_rate:.0f} reboots/s (tick in {ticks}); apiclab / QEMU = "
                  f"{med / q_rate:.1f}x (target >= 30x)")
    if args.leak:
        leak_check(args.leak)
    if args.breakdown:
        print()
        breakdown_main(["--reboots", str(args.breakdown)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
