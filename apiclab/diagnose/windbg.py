"""Windows kernel-debugger text: `!apic` (kdexts), optionally with `!idt`.

`!apic` prints, per processor, a header "Apic @ fffe0000 ID:0 (50014) LogDesc:01000000
DestFmt:ffffffff TPR 20" (x2APIC mode: "Apic (x2Apic mode) ID:0 (50014) LogDesc:... TPR 20"),
then TimeCnt/SpurVec, the ICR and LVT lines ("Timer..: 00000000`000100fd Vec:FD ... m" — a final
"m" is a masked entry) and the vector lists "TMR: 51-52, 62, A3", "IRR: D1", "ISR: E1" (hex
vectors, ranges with "-", empty when none). It prints no SVR enable bit and no PPR: PPR comes from
the SDM rule, and the enable bit is reported as not shown.

`!idt` lines name each vector's handler: "d1:\tfffff80002a2c9f0 hal!HalpHpetClockInterruptStub
(KINTERRUPT ...)" or "d1: hal!HalpHpetClockInterruptStub".
"""

from __future__ import annotations

import re

from apiclab.arch.registers import Reg
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.evidence import CpuEvidence, Evidence

HEADER = re.compile(
    r"^(?:(\d+): kd> (?:!apic\S*)?\s*)?Apic (?:@ [0-9a-fA-F`]+|\(x2Apic mode\))\s+"
    r"ID:([0-9a-fA-F]+) \(([0-9a-fA-F]+)\)\s+LogDesc:([0-9a-fA-F]+)\s+"
    r"(?:DestFmt:([0-9a-fA-F]+)\s+)?TPR ([0-9a-fA-F]{1,2})\s*$")
_PROMPT = re.compile(r"^(\d+): kd>")
_SPUR = re.compile(r"SpurVec:([0-9a-fA-F]{1,2})\b")
_LVT = re.compile(r"^(Timer|Linti0|Linti1|Error|PerfCnt|TherMon|CMCI)\.*:\s*"
                  r"([0-9a-fA-F]{8})`([0-9a-fA-F]{8})\s+Vec:([0-9a-fA-F]{2})\b(.*)$")
_LVT_REGS = {"Timer": Reg.LVT_TIMER, "Linti0": Reg.LVT_LINT0, "Linti1": Reg.LVT_LINT1,
             "Error": Reg.LVT_ERROR, "PerfCnt": Reg.LVT_PERF, "TherMon": Reg.LVT_THERMAL,
             "CMCI": Reg.LVT_CMCI}
_LIST = re.compile(r"^(TMR|IRR|ISR):\s*(.*?)\s*$")
_ITEM = re.compile(r"^([0-9a-fA-F]{1,2})(?:-([0-9a-fA-F]{1,2}))?$")
IDT = re.compile(r"^\s*([0-9a-fA-F]{2}):\s+(?:[0-9a-fA-F`]{8,17}\s+)?([\w$.]+![\w$@?.]+|[\w$.]+"
                 r"\+0x[0-9a-fA-F]+)")
_LISTS = ("TMR", "IRR", "ISR")


def looks_like(text: str) -> bool:
    return any(HEADER.match(line.strip()) for line in text[:20_000].splitlines()[:200])


def _vectors(body: str, where: str) -> int:
    if body.upper() in ("", "NONE", "(NONE)"):
        return 0
    bits = 0
    for item in re.split(r"[,\s]+", body.strip(", ")):
        m = _ITEM.match(item)
        if not m:
            raise EvidenceError(f"{where}: {item!r} is not a hex vector or range (e.g. 51-52)")
        lo = int(m[1], 16)
        hi = int(m[2], 16) if m[2] else lo
        if hi < lo:
            raise EvidenceError(f"{where}: range {item!r} runs backwards")
        for v in range(lo, hi + 1):
            bits |= 1 << v
    return bits


def parse_idt(text: str) -> dict[int, str]:
    """vector -> handler symbol, from `!idt` lines anywhere in the text."""
    out = {}
    for line in text.splitlines():
        if m := IDT.match(line):
            out[int(m[1], 16)] = m[2]
    return out


def parse(text: str, name: str) -> Evidence:
    cpus: list[CpuEvidence] = []
    lists: set[str] = set()
    prompt_cpu: int | None = None
    current: CpuEvidence | None = None

    def close(lineno: int) -> None:
        if current is not None and len(lists) < len(_LISTS):
            missing = ", ".join(x for x in _LISTS if x not in lists)
            raise EvidenceError(f"{name}:{lineno}: `!apic` of processor {current.cpu} is "
                                f"truncated: no {missing} line")

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{lineno}"
        if m := HEADER.match(line):
            close(lineno)
            cpu_no = int(m[1]) if m[1] else prompt_cpu if prompt_cpu is not None else len(cpus)
            current = CpuEvidence(cpu=cpu_no, apic_id=int(m[2], 16), tpr=int(m[6], 16),
                                  x2apic="x2Apic" in line)
            cpus.append(current)
            lists, prompt_cpu = set(), None
            continue
        if m := _PROMPT.match(line):
            prompt_cpu = int(m[1])
        if current is None or len(lists) == len(_LISTS):
            continue
        if m := _SPUR.search(line):
            current.notes.append(f"spurious vector {m[1].lower()}; !apic does not show the "
                                 "SVR enable bit")
        elif m := _LVT.match(line):
            value = int(m[3], 16)
            masked = re.search(r"\bm\s*$", m[5]) is not None
            current.lvt[int(_LVT_REGS[m[1]])] = value | (0x10000 if masked else 0)
        elif m := _LIST.match(line):
            bits = _vectors(m[2], where)
            setattr(current, m[1].lower(), bits)
            lists.add(m[1])
    close(len(text.splitlines()))
    if not cpus:
        raise EvidenceError(f"{name}: no \"Apic @ ... ID:... TPR ..\" header: not WinDbg `!apic` "
                            "text")
    handlers = parse_idt(text)
    for cpu in cpus:
        cpu.handlers = dict(handlers)
    notes = ["!apic shows no RFLAGS: IF and the interrupt shadow are not known",
             "!apic shows no PPR: it is computed from TPR and ISR (SDM §10.8.3.1)"]
    if not handlers:
        notes.append("no `!idt` text: in-service vectors are not named by handler")
    return Evidence("windbg-apic", cpus, notes)
