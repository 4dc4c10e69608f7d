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
from collections.abc import Iterator
from dataclasses import dataclass

from apiclab.diagnose.errors import EvidenceError

LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+(?:\(\s*\d+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:[\w.]{4,6}\s+)?"
    r"(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<msg>.*)$")
_SKIP = re.compile(r"^\s*(#|cpus=\d+|version = |CPU \d+ is empty|CPU:\d+ \[LOST|\s*$|"
                   r"trace-cmd: |\s*\[LOST)")


@dataclass(frozen=True, slots=True)
class TraceLine:
    lineno: int
    pid: int
    comm: str
    time: float
    event: str
    msg: str


def looks_like(text: str) -> bool:
    head = [ln for ln in text.splitlines()[:200] if not _SKIP.match(ln)]
    return bool(head) and sum(1 for ln in head[:20] if LINE.match(ln)) >= max(1, len(head[:20]) // 2)


def lines(text: str, name: str) -> Iterator[TraceLine]:
    """The event lines of the text, in order; a line that is neither a header nor an event is an
    error naming its number."""
    seen = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        m = LINE.match(raw)
        if m:
            seen = True
            yield TraceLine(lineno, int(m["pid"]), m["comm"].strip(), float(m["ts"]),
                            m["event"], m["msg"].strip())
        elif not _SKIP.match(raw):
            raise EvidenceError(f"{name}:{lineno}: not a trace event line (trace-cmd report or "
                                f"tracefs form): {raw.strip()[:60]!r}")
    if not seen:
        raise EvidenceError(f"{name}: no trace events: not `trace-cmd report` or tracefs text")
