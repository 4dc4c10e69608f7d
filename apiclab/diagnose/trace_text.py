"""Kernel trace text with kvm events: `trace-cmd report` output or a raw tracefs `trace` file.

Both print one event a line as "TASK-PID [CPU] (FLAGS) TIMESTAMP: EVENT: FIELDS" (tracefs adds the
irqs-off/need-resched flags column; trace-cmd report omits it by default). The FIELDS are each
event's print format, as /sys/kernel/tracing/events/kvm/*/format gives it on Linux 6.x, e.g.
  kvm_apic_accept_irq  "apicid %x vec %u (%s|%s)"      (apicid is the vcpu_id, lapic.c)
  kvm_inj_virq         "IRQ 0x%x" (6.x) / "irq %u" (older kernels)
  kvm_eoi, kvm_pv_eoi  "apicid %x vector %d"
  kvm_apic             "apic_write APIC_TASKPRI = 0x20" (unknown registers as "0x110")
  kvm_entry            "vcpu %u, rip 0x%lx ..."; kvm_exit "vcpu %u reason %s ..." (6.x)
  kvm_msr              "msr_write 808 = 0x20"
Lines the parser does not recognise as events stop it (a garbled or truncated trace is refused
rather than half read); the headers both tools print are skipped.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from apiclab.diagnose.errors import EvidenceError

# One event line: "TASK-PID [CPU] (FLAGS) TIMESTAMP: EVENT: FIELDS". Matched over the whole text
# at once (MULTILINE findall), so a million lines are split in C, not line by line in Python
# (bench/diagnose_trace.py).
EVENT = re.compile(
    r"^([^\n]*?\S[^\n]*?)-(\d+)[ \t]+(?:\([ \t]*\d+\)[ \t]+)?\[\d+\][ \t]+(?:[\w.]{4,6}[ \t]+)?"
    r"(\d+\.\d+):[ \t]+(\w+):[ \t]*([^\n]*)$", re.MULTILINE)
_SKIP = re.compile(r"^[ \t]*(#|cpus=\d+|version = |CPU \d+ is empty|CPU:\d+ \[LOST|\[LOST|"
                   r"trace-cmd: |$)")
# Cheap counts of the header lines both tools print, to check a whole trace without a Python
# pass over its lines; only when they do not add up are the lines looked at one by one.
_HEADER_STARTS = ("\n#", "\ncpus=", "\nversion = ", "\nCPU ", "\n\n", "\ntrace-cmd: ",
                  "\n[LOST")


class TraceLine(NamedTuple):  # a tuple: a million of them are made per big trace
    lineno: int
    pid: int
    comm: str
    ts: str  # the timestamp as printed; `time` converts it (only the events that need it)
    event: str
    msg: str

    @property
    def time(self) -> float:
        return float(self.ts)


def looks_like(text: str) -> bool:
    head = [ln for ln in text[:20_000].splitlines()[:200] if not _SKIP.match(ln)]
    hits = sum(1 for ln in head[:20] if EVENT.match(ln))
    return bool(head) and hits >= max(1, len(head[:20]) // 2)


def events(text: str, name: str) -> list[tuple[str, str, str, str, str]]:
    """(task, pid, timestamp, event, fields) of every event line, in order. A line that is
    neither a header nor an event is an error naming its number: a garbled or truncated trace
    is refused rather than half read."""
    found = EVENT.findall(text)
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    headers = sum(text.count(start) + text.startswith(start[1:]) for start in _HEADER_STARTS)
    if len(found) + headers < lines:
        for lineno, raw in enumerate(text.splitlines(), 1):
            if not EVENT.match(raw) and not _SKIP.match(raw):
                raise EvidenceError(f"{name}:{lineno}: not a trace event line (trace-cmd "
                                    f"report or tracefs form): {raw.strip()[:60]!r}")
    if not found:
        raise EvidenceError(f"{name}: no trace events: not `trace-cmd report` or tracefs text")
    return found


def line_of(text: str, index: int) -> int:
    """The line number of the `index`-th event line (for error messages only)."""
    seen = -1
    for lineno, raw in enumerate(text.splitlines(), 1):
        if EVENT.match(raw):
            seen += 1
            if seen == index:
                return lineno
    return 0
