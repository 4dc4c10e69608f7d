"""Where one reboot of `apiclab kvm storm` spends its time on this host's KVM, from KVM's own
tracepoints (a private tracefs instance, apiclab/backends/kvm/tracefs.py):

- `kvm_emulate_insn`, one per instruction KVM's emulator runs: counted per agent routine (the
  ROM's ELF symbols, rebuilt with binutils) and timed to the next event of our thread;
- `kvm_pio` + `kvm_userspace_exit`: the exits to user space (the agent's log port and the exit
  port), timed from the exit to the guest's next event (user space, then KVM_RUN again);
- `kvm_msr` (the LVT timer's initial count written) to `kvm_apic_accept_irq` of the clock
  vector: how long the phase-0 clock wait waits for its tick.

    python bench/kvm_storm_breakdown.py [--reboots 30]

A traced reboot is slower than an untraced one (each event is written to the ring buffer); the
untraced time per reboot of the same VM is printed beside it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from apiclab.backends.kvm.backend import open_kvm
from apiclab.backends.kvm.inplace import InPlaceVm
from apiclab.backends.kvm.storm_guest import CLOCK_VECTOR, storm_program
from apiclab.backends.kvm.tracefs import TraceCapture, TraceEvent, TraceUnavailable
from apiclab.guest.agent.build import AGENT
from apiclab.guest.agent.image import build_image

EVENTS = ("kvm_emulate_insn", "kvm_pio", "kvm_userspace_exit", "kvm_msr",
          "kvm_apic_accept_irq", "kvm_eoi", "kvm_exit", "kvm_entry", "kvm_inj_virq")
LABELS = {"kvm_apic_accept_irq": "interrupt accepted, to the next event (a halted vCPU wakes)",
          "kvm_pio": "port write decoded by KVM, to the exit",
          "kvm_msr": "x2APIC register write (WRMSR), to the next event",
          "kvm_eoi": "EOI processed, to the next event"}
# agent.S routines by what they do for the storm's cycle
GROUPS = {
    "log record formatting (hex digits, line head)": ("r_hex", "r_hex8", "r_hex32", "r_hex64",
                                                       "r_head", "r_emit"),
    "phase-0 clock wait (RDTSC spin until the tick)": ("r_op_wait",),
    "firmware's interrupt-enabled pause": ("r_op_pause",),
    "boot: reset vector to the interpreter (REP copies)": ("reset_vector", "start",
                                                           "batch_select", "r_interp"),
    "interrupt handlers": ("r_common", "stubs16"),
}
_INSN = re.compile(r"(?P<base>[0-9a-f]+):(?P<rip>[0-9a-f]+):")
SYSFS = Path("/sys/module")


def _labels() -> tuple[list[int], list[str]]:
    """The agent's code labels (not its .set constants) sorted by ROM offset."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with tempfile.TemporaryDirectory(prefix="apiclab-breakdown-") as tmp:
        AGENT.build(Path(tmp))
        with open(Path(tmp) / "agent.elf", "rb") as f:
            table = ELFFile(f).get_section_by_name(".symtab")
            assert isinstance(table, SymbolTableSection)
            labels = sorted((s["st_value"], s.name) for s in table.iter_symbols()
                            if s.name and s["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS")
                            and s["st_info"]["type"] not in ("STT_SECTION", "STT_FILE"))
    return [a for a, _ in labels], [n for _, n in labels]


def _parameter(module: str, name: str) -> str:
    path = SYSFS / module / "parameters" / name
    return path.read_text().strip() if path.exists() else "-"


def breakdown(reboots: int) -> None:
    offsets, names = _labels()

    def routine(message: str) -> str:
        m = _INSN.match(message)
        if m is None:
            return "?"
        i = bisect.bisect_right(offsets, int(m.group("rip"), 16) & 0xFFFF) - 1
        return names[i] if i >= 0 else "?"

    with open_kvm() as kvm:
        with kvm.create_vm() as probe, probe.create_vcpu(0) as vcpu:
            tsc_khz = vcpu.get_tsc_khz()
        with InPlaceVm(build_image(storm_program(tsc_khz * 1000)), kvm) as vm:
            vm.reset()
            for _ in range(20):  # warm up
                vm.run_cycle()
                vm.reset()
            start = time.perf_counter()
            for _ in range(reboots):
                vm.run_cycle()
                vm.reset()
            untraced = (time.perf_counter() - start) / reboots
            with TraceCapture(EVENTS, buffer_kb=max(4096, reboots * 400)) as capture:
                start = time.perf_counter()
                for _ in range(reboots):
                    vm.run_cycle()
                    vm.reset()
                traced = (time.perf_counter() - start) / reboots
    events: list[TraceEvent] = [e for e in capture.events if e.own]
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    waits: list[float] = []
    armed: float | None = None
    last_port = ""
    for this, following in itertools.pairwise(events):
        dt = following.time_s - this.time_s
        if this.event == "kvm_emulate_insn":
            key = "insn " + routine(this.message)
        elif this.event == "kvm_userspace_exit":
            key = ("reset in place between cycles (KVM_RUN returned at the exit port)"
                   if "0x501" in last_port else "exit to user space and back (log port)")
        else:
            key = LABELS.get(this.event, this.event)
        counts[key][0] += 1
        counts[key][1] += dt
        if this.event == "kvm_pio":
            last_port = this.message
        elif this.event == "kvm_msr" and "msr_write 838 " in this.message:
            armed = this.time_s  # x2APIC TIMER_INITIAL: the periodic clock starts
        elif (this.event == "kvm_apic_accept_irq" and f"vec {CLOCK_VECTOR} " in this.message
              and armed is not None):
            waits.append((this.time_s - armed) * 1e6)
            armed = None
    names_seen = {e.event for e in events}
    print(f"4. Where a reboot's time goes ({reboots} reboots traced through tracefs; "
          f"untraced {untraced * 1e6:.0f} us per reboot, traced {traced * 1e6:.0f} us)")
    print(f"   host: kvm_pvm pvm_emul_batch={_parameter('kvm_pvm', 'pvm_emul_batch')}, "
          f"kvm min_timer_period_us={_parameter('kvm', 'min_timer_period_us')}; events seen: "
          f"{', '.join(sorted(names_seen))} (no kvm_exit/kvm_entry: the guest never runs "
          "natively, every instruction is emulated)")
    insns = sum(c for k, (c, _) in counts.items() if k.startswith("insn "))
    insn_s = sum(s for k, (_, s) in counts.items() if k.startswith("insn "))
    if insns:
        print(f"   emulated instructions: {insns / reboots:.0f} per reboot, "
              f"{insn_s / insns * 1e6:.2f} us each traced, {insn_s / reboots * 1e6:.0f} us per "
              "reboot")
    print(f"   {'class':64} {'per reboot':>10} {'us/reboot':>10} {'us each':>8}")
    grouped: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for key, (c, s) in counts.items():
        group = next((g for g, members in GROUPS.items()
                      if key.startswith("insn ") and key[5:] in members), None)
        if group is None:
            group = "interpreter (fetch, dispatch, APIC writes)" if key.startswith("insn ") \
                else key
        grouped[group][0] += c
        grouped[group][1] += s
    for key, (c, s) in sorted(grouped.items(), key=lambda kv: -kv[1][1]):
        print(f"   {key:64} {c / reboots:10.1f} {s / reboots * 1e6:10.1f} {s / c * 1e6:8.2f}")
    if waits:
        print(f"   clock wait, LVT timer armed -> tick accepted: median {statistics.median(waits):.0f}"
              f" us, min {min(waits):.0f}, max {max(waits):.0f} (period asked 100 us; KVM "
              "raises it to min_timer_period_us; a tick that fires while the emulator runs "
              "is injected only when the emulation batch ends)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reboots", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        breakdown(args.reboots)
    except (OSError, TraceUnavailable) as e:
        print(f"4. breakdown not measured: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
