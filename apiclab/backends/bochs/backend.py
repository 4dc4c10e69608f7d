"""Running one guest program on `bochs -q -f CONFIG`."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from apiclab.arch.lapic_state import LapicState
from apiclab.backends import emulator
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.backends.bochs.vgarom import find_vga_rom
from apiclab.guest.agent import batch, log
from apiclab.guest.agent.image import RELAY_FLAG_OFFSET, agent_binary
from apiclab.guest.program import TESTDEV_IRQ, Out, Program, encode, testdev_line

BOCHS = "bochs"
# Bochs' TSC advances one tick per emulated instruction at `ips` instructions per second.
IPS = 50_000_000
TSC_KHZ = IPS // 1000
SHUTDOWN = "Shutdown port: shutdown requested"  # the agent's "Shutdown" to port 0x8900
# Bochs' VNC server takes a port in 5900-5949; when a burst of runs (or another user) holds all of
# them, Bochs exits before the guest starts, and a moment later the run can simply be repeated.
RFB_BUSY = "RFB could not bind any port"
RFB_RETRIES = 5


def config(rom: Path, vga_rom: Path, batch_table: Path | None = None, cpus: int = 1) -> str:
    """A headless PC whose firmware is the agent ROM; `vga_rom` only fills the VGA ROM slot that
    Bochs insists on (vgarom.py), the agent never calls it. A batch table (apiclab.guest.agent.
    batch) is loaded into RAM as an option RAM image; the agent's resets through port 0xCF9 are
    hardware resets of the CPU and every device (the i440FX's reset control register).
    `cpus` > 1: Debian's Bochs is built with SMP; CPU 0 is the bootstrap processor and the
    others wait for a start-up IPI from power-on (SDM vol. 3A §8.4.1), which the agent sends
    itself (no BIOS, no MP table or ACPI needed)."""
    lines = [
        "megs: 2",  # the agent lives below 64 KiB; less memory boots faster
        f"romimage: file={rom}",
        f"vgaromimage: file={vga_rom}",
        # Skylake-X has x2APIC and TSC-deadline (Bochs' default CPU has xAPIC only)
        f"cpu: model=corei7_skylake_x, count={cpus}, ips={IPS}, reset_on_triple_fault=0",
        'display_library: rfb, options="timeout=0"',  # no VNC client is awaited
        "port_e9_hack: enabled=1",
        "sound: waveoutdrv=dummy",
        "speaker: enabled=0",
        "parport1: enabled=0",
        "com1: enabled=0",
        "log: -",
        "panic: action=fatal",
        "error: action=report",
        "info: action=ignore",
        "debug: action=ignore",
    ]
    if batch_table is not None:  # a table of programs for several CPUs lies above their RAM
        address = batch.TABLE_ADDRESS if cpus == 1 else batch.TABLE_ADDRESS_SMP
        lines.append(f"optramimage1: file={batch_table}, address={address:#x}")
    return "\n".join([*lines, ""])


def ready() -> str:
    """Bochs' version when Bochs and a VGA ROM for it are here; else BackendUnavailable, one
    line naming what is missing. What the Bochs backends and their tests check first."""
    version = _version()
    find_vga_rom()
    return version


def unavailable_reason() -> str | None:
    """None when Bochs can run here, else the one-line reason (for test skips)."""
    try:
        ready()
    except BackendUnavailable as e:
        return str(e)
    return None


@cache
def _version() -> str:
    proc = emulator.probe(BOCHS, "--help", "Debian packages bochs bochsbios")
    found = re.search(r"Bochs x86 Emulator (\S+)", proc.stdout + proc.stderr)
    return f"Bochs {found.group(1)}" if found else "Bochs (version unknown)"


# Bochs 2.7 runs with no monitor a host could send an NMI through (QEMU's is inject-nmi), and
# nothing of its PC the agent can drive pulses LINT1
LINT1_REFUSAL = ("Bochs 2.7 has no LINT1 source a run can pulse (no monitor command sends it an "
                 "NMI, as QEMU's inject-nmi does)")


def _refusal(program: Program) -> str | None:
    """Why Bochs cannot run `program`, or None."""
    if any(isinstance(s, Out) and testdev_line(s.port) is not None for s in program.steps):
        return f"Bochs has no pc-testdev to drive IOAPIC inputs (ports {TESTDEV_IRQ:#x} + line)"
    if program.pulses_lint1:
        return LINT1_REFUSAL
    return None


class BochsBackend:
    name = "bochs"

    def refusal(self, program: Program) -> str | None:
        """Why Bochs cannot run `program` whatever the host, or None."""
        return _refusal(program)

    def availability(self) -> Availability:
        return emulator.availability(ready, " (cpu corei7_skylake_x)")

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult:
        if lapic_image is not None:
            raise BackendUnavailable("Bochs cannot load a KVM_SET_LAPIC register image")
        refusal = _refusal(program)
        if refusal is not None:
            raise BackendUnavailable(refusal)
        ready()  # bochs and a VGA ROM for it, or one line naming what is missing
        # several CPUs: the others' records come through port 0xE9 too, relayed by the agent
        # from RAM at the end (Bochs has no device on their own ports)
        several = program.cpus > 1
        with emulator.agent_rom(program, "bochs", relay=several) as rom:
            argv, child = _boot(rom, None, timeout_s, program.cpus)
        text = child.stdout.decode("ascii", errors="replace")
        if several:
            trace = log.decode_cpus(log.split_relayed(text, program.cpus), TSC_KHZ)
        else:
            trace = log.decode(text, TSC_KHZ)
        if not child.timed_out and SHUTDOWN not in text + child.stderr and not trace.of_kind("end"):
            tail = (text + child.stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"Bochs exited with status {child.status}: "
                               f"{' | '.join(tail)[:300]}")
        records = "\n".join(line for line in text.splitlines()
                             if line.startswith("@") or batch.RELAY_LINE.fullmatch(line))
        evidence = {"argv": " ".join(argv), "exit_status": child.status, "port_e9": records,
                    "bochs_messages": _messages(text)}
        return RunResult(trace=trace, timed_out=child.timed_out, evidence=evidence)


    # the suite's runner may hand programs for several CPUs to run_batch too (OneCpuOnlyBatch)
    batches_several_cpus = True

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float) -> list[RunResult | None]:
        """`programs` in as few Bochs processes as can hold them, one program per hardware reset
        (apiclab.guest.agent.batch): the one-CPU programs in one, the programs for N > 1 CPUs in
        one per N (cpu: count=N, the agent in relay mode). None for each program that did not
        finish there or that `run` refuses (the caller runs it alone, which says why)."""
        ready()
        results: list[RunResult | None] = [None] * len(programs)
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(programs):
            if _refusal(p) is None:
                groups.setdefault(p.cpus, []).append(i)
        deadline = time.monotonic() + timeout_s
        for cpus, indices in sorted(groups.items()):
            for part in _fitting(programs, indices, cpus):
                left = deadline - time.monotonic()
                if left <= 0:
                    return results
                for i, result in zip(part, self._one_batch([programs[i] for i in part], cpus,
                                                           left), strict=True):
                    results[i] = result
        return results

    def _one_batch(self, programs: Sequence[Program], cpus: int,
                   timeout_s: float) -> list[RunResult | None]:
        """`programs`, all for `cpus` CPUs, in one Bochs process."""
        several = cpus > 1
        address = batch.TABLE_ADDRESS_SMP if several else batch.TABLE_ADDRESS
        table = batch.table(programs, address)
        with emulator.temp_dir("apiclab-bochs-batch-") as tmp:
            rom, table_file = tmp / "agent.rom", tmp / "batch.bin"
            image = bytearray(agent_binary())
            image[RELAY_FLAG_OFFSET] = 1 if several else 0
            rom.write_bytes(bytes(image))
            table_file.write_bytes(table)
            argv, child = _boot(rom, table_file, timeout_s, cpus)
        text = child.stdout.decode("ascii", errors="replace")
        results: list[RunResult | None] = []
        for case_log in batch.split(text, len(programs), relayed=several):
            if case_log is None:
                results.append(None)
                continue
            trace = (log.decode_cpus(log.split_relayed(case_log, cpus), TSC_KHZ) if several
                     else log.decode(case_log, TSC_KHZ))
            evidence = {"argv": " ".join(argv), "exit_status": child.status,
                        "port_e9": case_log.rstrip("\n"), "batch_of": len(programs)}
            results.append(RunResult(trace=trace, evidence=evidence))
        return results


def _fitting(programs: Sequence[Program], indices: list[int], cpus: int) -> list[list[int]]:
    """`indices` in consecutive parts whose programs fit one batch table each."""
    address = batch.TABLE_ADDRESS_SMP if cpus > 1 else batch.TABLE_ADDRESS
    parts: list[list[int]] = []
    used = 64  # the table's header, generously
    for i in indices:
        size = len(encode(programs[i])) + batch.PROGRAM_ALIGN + 2
        if parts and parts[-1] and batch.capacity_left(used + size, 0, address):
            parts[-1].append(i)
            used += size
        else:
            parts.append([i])
            used = 64 + size
    return parts


def _boot(rom: Path, batch_table: Path | None, timeout_s: float,
          cpus: int = 1) -> tuple[list[str], emulator.ChildExit]:
    """One Bochs process on `rom` (in its own temporary directory) with `cpus` CPUs, retried
    while the VNC ports are all taken."""
    cfg = rom.parent / "bochsrc"
    cfg.write_text(config(rom, find_vga_rom(), batch_table, cpus))
    argv = [shutil.which(BOCHS) or BOCHS, "-q", "-f", str(cfg)]
    for attempt in range(RFB_RETRIES):
        # "c" continues from the debugger prompt
        child = emulator.run_child(argv, timeout_s, stdin=b"c\n", cwd=rom.parent)
        if RFB_BUSY not in child.stderr + child.stdout.decode("ascii", errors="replace"):
            break
        time.sleep(0.2 * (attempt + 1))
    return argv, child


def _messages(text: str) -> str:
    """Bochs' own error and panic lines (e.g. APIC errors it reports), without the banner."""
    keep = [line for line in text.splitlines()
            if re.match(r"^\d{11}[epi]\[", line) and "PLUGIN" not in line]
    return "\n".join(keep[-20:])
