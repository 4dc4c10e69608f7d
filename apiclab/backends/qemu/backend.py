"""Running one guest program on `qemu-system-x86_64 -accel tcg`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from apiclab.arch.lapic_state import LapicState
from apiclab.backends import emulator
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.engine import events as ev
from apiclab.guest.agent import batch, log
from apiclab.guest.agent.image import agent_binary
from apiclab.guest.program import LOG_PORT_AP, Mode, Program

QEMU = "qemu-system-x86_64"
EXIT_PORT = 0x501  # agent.S PORT_EXIT
# isa-debug-exit makes QEMU exit with status (value << 1) | 1; the agent writes 0.
EXIT_STATUS = 1
# TCG's RDTSC follows the host clock (cpu_get_host_ticks); only event order is compared, so a
# nominal rate is enough to turn TSC values into ns.
NOMINAL_TSC_KHZ = 1_000_000


X2APIC_SINCE = 9  # "apic: add support for x2APIC mode" (hw/intc/apic.c) came with QEMU 9.0


def _major(version: str) -> int:
    """8 from "QEMU emulator version 8.2.2 (...)"; 0 when the line says no version."""
    found = re.search(r"version (\d+)\.", version)
    return int(found.group(1)) if found else 0


def command(rom: Path, debugcon: Path, batch_table: Path | None = None,
            ap_logs: Sequence[Path] = (), serial: str = "none") -> list[str]:
    """The QEMU command line of one run: a bare PC whose firmware is the agent ROM. With a batch
    table (apiclab.guest.agent.batch) loaded into RAM, the guest's resets must reset the machine
    rather than end QEMU, so -no-reboot is left out. With `ap_logs`, a program for 1 +
    len(ap_logs) CPUs: -smp, and CPU k's log port (agent.S PORT_LOG_AP + k) to file k - 1.
    `serial`: what COM1 is (-serial; a chardev for a LINT1 pulse's handshake, `lint1`)."""
    argv = [
        QEMU, "-accel", "tcg", "-machine", "pc", "-cpu", "qemu64", "-m", "16",
        "-nographic", "-nodefaults", "-monitor", "none", "-serial", serial,
        "-bios", str(rom),
        "-debugcon", f"file:{debugcon}",
        "-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=2",
        "-device", "pc-testdev",  # ports 0x2000 + n drive ISA line n (program.TESTDEV_IRQ)
    ]
    if ap_logs:
        argv += ["-smp", str(1 + len(ap_logs))]
    for k, path in enumerate(ap_logs, 1):
        argv += ["-chardev", f"file,id=aplog{k},path={path}",
                 "-device", f"isa-debugcon,iobase={LOG_PORT_AP + k:#x},chardev=aplog{k}"]
    if batch_table is None:
        argv.insert(argv.index("-monitor"), "-no-reboot")
    else:
        argv += ["-device", f"loader,file={batch_table},addr={batch.TABLE_ADDRESS:#x},"
                 "force-raw=on"]
    return argv


@cache
def _version() -> str:
    proc = emulator.probe(QEMU, "--version", "Debian package qemu-system-x86")
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if proc.returncode != 0 or not first:
        raise BackendUnavailable(f"{QEMU} --version failed: {proc.stderr.strip()[:200]}")
    return first.strip()


def _refusal(program: Program) -> str | None:
    """Why this QEMU cannot run `program`, or None."""
    version = _version()
    if program.mode == Mode.X2APIC_REAL and _major(version) < X2APIC_SINCE:
        # TCG's APIC has x2APIC only from QEMU 9.0 on; before, every x2APIC
        # MSR access is a no-op (TCG ignores MSRs it does not know, with no #GP).
        return f"{version.split('(')[0].strip()}: TCG has no x2APIC before QEMU 9.0"
    return None


class QemuBackend:
    name = "qemu"

    def refusal(self, program: Program) -> str | None:
        """Why this QEMU cannot run `program`, or None (asks QEMU its version once)."""
        return _refusal(program)

    def availability(self) -> Availability:
        return emulator.availability(_version, " (TCG, userspace APIC)")

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult:
        if lapic_image is not None:
            raise BackendUnavailable("QEMU under TCG cannot load a KVM_SET_LAPIC register image")
        refusal = _refusal(program)
        if refusal is not None:
            raise BackendUnavailable(refusal)
        with emulator.agent_rom(program, "qemu") as rom:
            debugcon = rom.parent / "debugcon.log"
            ap_logs = [rom.parent / f"debugcon-cpu{k}.log" for k in range(1, program.cpus)]
            for path in (debugcon, *ap_logs):
                path.touch()
            pulses: int | None = None
            lint1_error = ""
            if program.pulses_lint1:  # only these runs pay for a QMP monitor and COM1
                from apiclab.backends.qemu.lint1 import SERIAL, Lint1Host

                with Lint1Host(rom.parent) as host:
                    argv = command(rom, debugcon, ap_logs=ap_logs, serial=SERIAL) + host.argv()
                    child = emulator.run_child(argv, timeout_s)
                pulses, lint1_error = host.pulses, host.error
            else:
                argv = command(rom, debugcon, ap_logs=ap_logs)
                child = emulator.run_child(argv, timeout_s)
            output = debugcon.read_bytes()
            ap_outputs = [path.read_bytes() for path in ap_logs]
        if ap_outputs:
            # TCG's RDTSC is the host's clock for every vCPU, so the records merge by TSC
            trace = log.decode_cpus([output, *ap_outputs], NOMINAL_TSC_KHZ)
        else:
            trace = log.decode(output, NOMINAL_TSC_KHZ)
        if not child.timed_out and child.status != EXIT_STATUS and not trace.of_kind("end"):
            raise RuntimeError(f"QEMU exited with status {child.status}: "
                               f"{child.stderr.strip()[:300]}")
        evidence: dict[str, object] = {"argv": " ".join(argv), "exit_status": child.status,
                                       "debugcon": output}
        if pulses is not None:
            evidence["lint1_pulses"] = pulses  # QMP inject-nmi commands QEMU answered
            unanswered = [e for e in trace.of_kind(ev.AgentError.kind)
                          if getattr(e, "reason", "") == log.LINT1_UNANSWERED]
            if unanswered or lint1_error:
                # the pulse did not land at its step: what the guest saw says nothing of LINT1
                raise RuntimeError(f"{log.LINT1_UNANSWERED} ({pulses} pulse(s) sent"
                                   + (f"; {lint1_error}" if lint1_error else "") + ")")
        if ap_outputs:
            evidence["ap_debugcon"] = [o.decode("ascii", errors="replace") for o in ap_outputs]
        return RunResult(trace=trace, timed_out=child.timed_out, evidence=evidence)

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float) -> list[RunResult | None]:
        """All `programs` in one QEMU process, one per system reset (apiclab.guest.agent.batch);
        None for each program that did not finish there or that `run` refuses (the caller runs
        it alone, which says why)."""
        # a LINT1 pulse needs the run's own QMP monitor and COM1 (`run`)
        runnable = [i for i, p in enumerate(programs)
                    if _refusal(p) is None and not p.pulses_lint1]
        results: list[RunResult | None] = [None] * len(programs)
        if not runnable:
            return results
        table = batch.table([programs[i] for i in runnable])
        with emulator.temp_dir("apiclab-qemu-batch-") as tmp:
            rom, table_file, debugcon = tmp / "agent.rom", tmp / "batch.bin", tmp / "debugcon.log"
            rom.write_bytes(agent_binary())
            table_file.write_bytes(table)
            debugcon.touch()
            argv = command(rom, debugcon, table_file)

            def every_case_finished() -> bool:
                text = debugcon.read_bytes().decode("ascii", errors="replace")
                return None not in batch.split(text, len(runnable))

            child = emulator.run_child(argv, timeout_s, done=every_case_finished)
            output = debugcon.read_bytes().decode("ascii", errors="replace")
        for i, text in zip(runnable, batch.split(output, len(runnable)), strict=True):
            if text is not None:
                evidence = {"argv": " ".join(argv), "exit_status": child.status,
                            "debugcon": text.encode("ascii"), "batch_of": len(runnable)}
                results[i] = RunResult(trace=log.decode(text, NOMINAL_TSC_KHZ),
                                       evidence=evidence)
        return results
