"""QEMU's monitor text: `info lapic` (and, where given alongside, `info registers`).

The format is QEMU's `x86_cpu_dump_local_apic_state` and `x86_cpu_dump_state`
(target/i386/cpu-dump.c, QEMU 7.2): a header "dumping local APIC state for CPU N", one line per
LVT entry ("LVTT\t 0x000200d1 active-hi edge ... periodic Fixed (vec 209)"), "Timer\t DCR=..."
with the counts, "SPIV\t 0x...", "ICR", "ICR2" (xAPIC "cpu N (APIC ID)", x2APIC
"cpu N (X2APIC ID)"), "ESR", "ISR\t 225 " and "IRR\t 209(level) " (decimal vectors, "(none)"
when empty) and "APR 0x00 TPR 0x00 DFR 0x0f LDR 0x00 PPR 0x00". The same text comes from TCG's
userspace APIC and, after QEMU reads KVM_GET_LAPIC, from KVM's.

`info registers` gives "CPU#N" and "EFL=00000202 [...] CPL=0 II=0 A20=1 SMM=0 HLT=1" (RFL in
64-bit mode): IF is EFLAGS bit 9, II the interrupt shadow (HF_INHIBIT_IRQ), HLT a halted CPU.
"""

from __future__ import annotations

import re

from apiclab.arch.registers import Reg
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.evidence import CpuEvidence, Evidence

HEADER = re.compile(r"^dumping local APIC state for CPU\s+(\d+)\s*$")
_LVT_NAMES = {
    "LVT0": Reg.LVT_LINT0, "LVT1": Reg.LVT_LINT1, "LVTPC": Reg.LVT_PERF,
    "LVTERR": Reg.LVT_ERROR, "LVTTHMR": Reg.LVT_THERMAL, "LVTT": Reg.LVT_TIMER,
    "LVTCMCI": Reg.LVT_CMCI,
}
_LVT = re.compile(r"^(LVT\w*)\s+0x([0-9a-fA-F]{8})\b")
_TIMER = re.compile(r"^Timer\s+DCR=0x([0-9a-fA-F]+) \(divide by \d+\) initial_count = (\d+) "
                    r"current_count = (\d+)\s*$")
_SPIV = re.compile(r"^SPIV\s+0x([0-9a-fA-F]{8})\b")
_ICR2 = re.compile(r"^ICR2\s+0x[0-9a-fA-F]{8}(?: .*\((X2APIC|APIC) ID\))?")
_VECTORS = re.compile(r"^(ISR|IRR)\s+(.*?)\s*$")
_VECTOR = re.compile(r"^(\d{1,3})(\(level\))?$")
_LAST = re.compile(r"^APR 0x([0-9a-fA-F]{2}) TPR 0x([0-9a-fA-F]{2}) DFR 0x([0-9a-fA-F]{2}) "
                   r"LDR 0x([0-9a-fA-F]{2})(?:\(cluster \d+: id \d+\))? PPR 0x([0-9a-fA-F]{2})\s*$")
_REGS_CPU = re.compile(r"^CPU#(\d+)\s*$")
_EFLAGS = re.compile(r"\b(?:EFL|RFL)=([0-9a-fA-F]{8}) \[[-A-Z]{7}\] CPL=\d II=([01]) A20=[01] "
                     r"SMM=[01] HLT=([01])")
REQUIRED = ("LVTT", "Timer", "SPIV", "ISR", "IRR", "APR")


def looks_like(text: str) -> bool:
    return any(HEADER.match(line.strip()) for line in text[:20_000].splitlines()[:50])


def _vector_list(body: str, where: str) -> tuple[int, int]:
    """(vectors, level vectors) of an "ISR"/"IRR" line body."""
    if body == "(none)":
        return 0, 0
    bits = level = 0
    for token in body.split():
        m = _VECTOR.match(token)
        if not m or int(m[1]) > 255:
            raise EvidenceError(f"{where}: {token!r} is not a vector (0-255, decimal as QEMU "
                                "prints it)")
        bits |= 1 << int(m[1])
        if m[2]:
            level |= 1 << int(m[1])
    return bits, level


def _apply_line(cpu: CpuEvidence, line: str, where: str, seen: set[str]) -> None:
    if m := _LVT.match(line):
        if m[1] in _LVT_NAMES:
            cpu.lvt[int(_LVT_NAMES[m[1]])] = int(m[2], 16)
            seen.add(m[1])
    elif m := _TIMER.match(line):
        cpu.timer_divide, cpu.timer_initial, cpu.timer_current = (
            int(m[1], 16), int(m[2]), int(m[3]))
        seen.add("Timer")
    elif m := _SPIV.match(line):
        cpu.svr = int(m[1], 16)
        seen.add("SPIV")
    elif m := _ICR2.match(line):
        if m[1]:
            cpu.x2apic = m[1] == "X2APIC"
    elif m := _VECTORS.match(line):
        bits, level = _vector_list(m[2], where)
        if m[1] == "ISR":
            cpu.isr = bits
        else:
            cpu.irr = bits
        cpu.tmr |= level
        seen.add(m[1])
    elif m := _LAST.match(line):
        cpu.tpr, cpu.ppr_read = int(m[2], 16), int(m[5], 16)
        seen.add("APR")
    elif line.startswith(("ISR", "IRR", "APR ", "LVT", "SPIV", "Timer")):
        raise EvidenceError(f"{where}: not QEMU's `info lapic` form: {line[:60]!r}")


def parse_registers(text: str, name: str) -> dict[int, tuple[bool, bool, bool]]:
    """`info registers` of each CPU: cpu -> (IF, interrupt shadow, halted)."""
    out: dict[int, tuple[bool, bool, bool]] = {}
    cpu = 0
    for line in text.splitlines():
        if m := _REGS_CPU.match(line.strip()):
            cpu = int(m[1])
        elif m := _EFLAGS.search(line):
            out[cpu] = (bool(int(m[1], 16) & 0x200), m[2] == "1", m[3] == "1")
    return out


def parse(text: str, name: str) -> Evidence:
    """Every `info lapic` block of the text, one vCPU each; `info registers` blocks in the same
    text add IF, the interrupt shadow and HLT."""
    cpus: list[CpuEvidence] = []
    current: CpuEvidence | None = None
    seen: set[str] = set()

    def close(lineno: int) -> None:
        if current is not None:
            missing = [r for r in REQUIRED if r not in seen]
            if missing:
                raise EvidenceError(f"{name}:{lineno}: `info lapic` of CPU {current.cpu} is "
                                    f"truncated: no {', '.join(missing)} line")

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := HEADER.match(line):
            close(lineno)
            current, seen = CpuEvidence(cpu=int(m[1])), set()
            cpus.append(current)
        elif current is not None and line and not _REGS_CPU.match(line):
            if "APR" in seen and not line.startswith(("ISR", "IRR", "LVT", "SPIV", "APR")):
                continue  # past this CPU's block: `info registers` or other monitor text
            _apply_line(current, line, f"{name}:{lineno}", seen)
    close(len(text.splitlines()))
    if not cpus:
        raise EvidenceError(f"{name}: no \"dumping local APIC state for CPU N\" header: not "
                            "QEMU's `info lapic` text")
    regs = parse_registers(text, name)
    for cpu in cpus:
        if cpu.cpu in regs:
            cpu.if_flag, cpu.shadow, cpu.halted = regs[cpu.cpu]
    notes = [] if regs else ["no `info registers` text: RFLAGS.IF and the interrupt shadow are "
                             "not known"]
    return Evidence("qemu-info-lapic", cpus, notes)
