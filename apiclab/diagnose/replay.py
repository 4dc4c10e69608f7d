"""Replay a kvm trace per vCPU into the `arch` local APIC and reconstruct IRR, ISR, TPR and PPR.

What each event does to the model (Linux arch/x86/kvm/lapic.c and x86.c, where the tracepoints
sit):
- kvm_apic_accept_irq / kvm_apicv_accept_irq (vcpu_id, vector, mode, trigger): a fixed or
  lowest-priority interrupt is accepted into the IRR (`LocalApic.accept`, §10.8.4; a
  software-disabled APIC drops it, as `__apic_accept_irq` does after tracing it); INIT resets it.
- kvm_inj_virq: KVM acknowledged the vector and injects it: IRR -> ISR (`kvm_get_apic_interrupt`).
- kvm_eoi / kvm_pv_eoi: the EOI cleared that ISR bit (`apic_set_eoi`).
- kvm_apic writes: TPR, SVR, LVT entries, timer registers; reads of ISR, IRR, TPR and PPR are
  the APIC's own values and correct the model where it has drifted (said in the notes).
- kvm_entry at rip 0xfff0 after the vCPU ran elsewhere: a reset. QEMU then restores a reset
  register page with KVM_SET_LAPIC, which no tracepoint shows: the model resets the APIC.
What a trace cannot show, said in the notes rather than guessed: RFLAGS.IF; deliveries and
EOIs the CPU performs without an exit under APICv (virtual-interrupt delivery, EOI
virtualization, SDM vol. 3C §29.1.4, §29.2.2); state set before the trace began (an image
restored with KVM_SET_LAPIC). Without injection events (kvm_inj_virq, or kvm_entry's intr_info)
a delivery is known only from what follows it: the EOI that retires the vector, or a guest read
of ISR; a vector taken and neither EOIed nor read stays pending in the replay, and the note says
so. The replay never delivers on its own, since without IF it cannot know the guest could take it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from apiclab.arch.lapic import LocalApic
from apiclab.arch.registers import Reg, is_x2apic_msr, offset_of_msr
from apiclab.arch.vectors import highest, vectors_of
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.kvm_events import accept_fields, apic_fields, eoi_fields, inj_fields
from apiclab.diagnose.trace_text import TraceLine, events, line_of
from apiclab.engine import events as ev
from apiclab.engine.trace import Trace

_VCPU = re.compile(r"^vcpu (\d+)")
_RIP = re.compile(r"\brip 0x([0-9a-fA-F]+)")
_MSR = re.compile(r"^msr_(read|write) ([0-9a-fA-F]+) = 0x([0-9a-fA-F]+)")
_INTR_INFO = re.compile(r"\bintr_info 0x([0-9a-fA-F]+)")
_INHIBIT = re.compile(r"^(set|cleared) reason=\d+, inhibits=0x([0-9a-fA-F]+)")
_RAN = -1  # last_rip of a vCPU whose last entry was anywhere but the reset vector
RESET_RIP = 0xFFF0  # F000:FFF0, the first instruction after RESET/INIT (SDM vol. 3A §9.1.4)

_LVT_OFFSETS = {0x2F0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370}
_FIXED_MODES = ("Fixed", "LowPrio")


@dataclass
class VcpuReplay:
    cpu: int
    apic: LocalApic = field(default_factory=LocalApic)
    irr_since: dict[int, float] = field(default_factory=dict)
    isr_since: dict[int, float] = field(default_factory=dict)
    inferred: set[int] = field(default_factory=set)
    last_rip: int | None = None
    notes: list[str] = field(default_factory=list)
    corrections: int = 0
    svr_known: bool = False  # until an SVR write or a reset, the APIC is judged enabled


@dataclass
class Replay:
    name: str
    blind: bool  # no injection events in the trace: deliveries known only from what follows
    has_eoi_events: bool
    has_apic_events: bool
    vcpus: dict[int, VcpuReplay] = field(default_factory=dict)
    thread_vcpu: dict[int, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    resets: list[dict[str, object]] = field(default_factory=list)
    apicv: bool = False
    notes: list[str] = field(default_factory=list)
    end: float = 0.0
    tasks: Counter[str] = field(default_factory=Counter)
    comms: dict[int, str] = field(default_factory=dict)
    text: str = ""
    # Per vCPU, every change of IRR/ISR/TPR as an observation (`apiclab.engine.trace`), for
    # timelines; off unless asked for, as it costs time on a million events.
    observations: dict[int, Trace] | None = None

    def note(self, v: VcpuReplay, line: TraceLine, kind: type[ev.Reset | ev.Accept | ev.Deliver
                                                          | ev.Eoi | ev.TprWrite],
             vector: int) -> None:
        if self.observations is None:
            return
        apic = v.apic
        trace = self.observations.setdefault(v.cpu, Trace())
        trace.record(round(line.time * 1e9), kind, vector=vector, irr=vectors_of(apic.irr),
                     isr=vectors_of(apic.isr), tpr=apic.tpr, ppr=apic.ppr(),
                     source=f"{line.event}: {line.msg}")

    def vcpu(self, cpu: int) -> VcpuReplay:
        if cpu not in self.vcpus:
            v = self.vcpus[cpu] = VcpuReplay(cpu)
            v.apic.apic_id = cpu
            # A trace usually starts after the guest enabled its APIC; a reset or an SVR write
            # in the trace makes the enable bit known.
            v.apic.svr = 0x1FF
        return self.vcpus[cpu]

    def of_thread(self, line: TraceLine) -> VcpuReplay:
        cpu = self.thread_vcpu.get(line.pid)
        if cpu is None:
            # No kvm_entry/kvm_exit named this thread's vCPU yet: the first vCPU stands in.
            cpu = min(self.vcpus) if self.vcpus else 0
        return self.vcpu(cpu)

    # --- the events -----------------------------------------------------------------------------

    def where(self, line: TraceLine) -> str:
        """file:line of an event, for the one-line error (`lineno` holds the event's index)."""
        return f"{self.name}:{line_of(self.text, line.lineno)}"


    def unreadable(self, line: TraceLine) -> EvidenceError:
        """The one-line error for an event whose fields do not parse."""
        return EvidenceError(f"{self.where(line)}: {line.event} fields not understood: "
                             f"{line.msg[:60]!r}")
    def run(self, found: list[tuple[str, str, str, str, str]],
            pids: set[int] | None) -> dict[int, int]:
        """Every event through its handler; returns how many handled events each task had.
        Hot loop: a million events must replay in seconds (bench/diagnose_trace.py)."""
        handlers, counts = dict(_HANDLERS), self.counts
        if self.has_apic_events:
            del handlers["kvm_msr"]  # x2APIC accesses show as kvm_apic too (see `msr`)
        mapped, vcpus, ran = self.thread_vcpu, self.vcpus, _RAN
        per_task: dict[int, int] = {}
        last_ts = None
        for index, (comm, pid_text, ts, event, msg) in enumerate(found):
            pid = int(pid_text)
            if pids is not None and pid not in pids:
                continue
            counts[event] += 1
            last_ts = ts
            handler = handlers.get(event)
            if handler is None:
                continue
            per_task[pid] = per_task.get(pid, 0) + 1
            if pid not in self.comms:
                self.comms[pid] = comm.strip()
            # Entries and exits are most of a real trace and, once the thread's vCPU is known,
            # carry news only at a reset or an injection: decided here without a call.
            if event == "kvm_exit" and pid in mapped:
                continue
            if event == "kvm_entry" and pid in mapped and vcpus[mapped[pid]].last_rip == ran \
                    and "rip 0xfff0 " not in msg and "intr_info 0x8" not in msg:
                continue
            # tuple.__new__: a NamedTuple without its Python-level constructor (hot loop)
            handler(self, tuple.__new__(TraceLine, (index, pid, comm, ts, event, msg)))
        if last_ts is not None:
            self.end = float(last_ts)
        return per_task

    def entry(self, line: TraceLine) -> None:
        msg, cpu = line.msg, self.thread_vcpu.get(line.pid)
        if cpu is not None and (line.event == "kvm_exit" or (
                self.vcpus[cpu].last_rip == _RAN
                and "rip 0xfff0 " not in msg and "intr_info 0x8" not in msg)):
            return  # the common case, decided without regexes: nothing new in this event
        m = _VCPU.match(msg)
        if not m:
            return
        v = self.vcpu(int(m[1]))
        self.thread_vcpu[line.pid] = v.cpu
        if line.event != "kvm_entry":
            return
        info = _INTR_INFO.search(line.msg)
        if info:
            self._injected(v, int(info[1], 16), line)
        rip_m = _RIP.search(line.msg)
        if rip_m is None:
            return
        rip = int(rip_m[1], 16)
        if rip == RESET_RIP and v.last_rip not in (None, RESET_RIP):
            self.resets.append({"time": line.time, "cpu": v.cpu, "irr": v.apic.irr,
                                "isr": v.apic.isr})
            v.notes.append(f"reset at {line.time:.6f} s (entry at rip 0xfff0): the model "
                           "restores a reset APIC, as QEMU does with KVM_SET_LAPIC (not traced)")
            keep = v.apic.apic_id
            v.apic.reset()
            v.apic.apic_id = keep
            v.svr_known = True
            v.irr_since.clear()
            v.isr_since.clear()
            v.inferred.clear()
            self.note(v, line, ev.Reset, 0)
        v.last_rip = RESET_RIP if rip == RESET_RIP else _RAN

    def accept(self, line: TraceLine) -> None:
        fields = accept_fields(line.msg)
        if fields is None:
            raise self.unreadable(line)
        cpu, vector, mode, level = fields
        v = self.vcpu(cpu)
        if line.event == "kvm_apicv_accept_irq":
            self.apicv = True
        if mode == "INIT":
            v.apic.init()
            return
        if mode not in _FIXED_MODES:
            return
        was = bool(v.apic.irr & (1 << vector))
        v.apic.accept(vector, level=level)
        if not was and v.apic.irr & (1 << vector):
            v.irr_since[vector] = line.time
        self.note(v, line, ev.Accept, vector)

    def inject(self, line: TraceLine) -> None:
        vector = inj_fields(line.msg)
        if vector is None:
            raise self.unreadable(line)
        if vector < 0:
            return  # a software INTn, or a vector already acknowledged and now re-injected
        v = self.of_thread(line)
        self._acknowledged(v, vector, line.time)
        self.note(v, line, ev.Deliver, vector)

    def _injected(self, v: VcpuReplay, intr_info: int, line: TraceLine) -> None:
        """VM-entry interruption information (SDM vol. 3C §24.8.3): valid bit 31, type 10:8 = 0
        for an external interrupt, vector 7:0."""
        if intr_info >> 31 & 1 and (intr_info >> 8) & 7 == 0:
            self._acknowledged(v, intr_info & 0xFF, line.time)
            self.note(v, line, ev.Deliver, intr_info & 0xFF)

    def _acknowledged(self, v: VcpuReplay, vector: int, now: float) -> None:
        if v.apic.irr & (1 << vector):
            v.apic.irr &= ~(1 << vector)
            v.apic.isr |= 1 << vector
            v.irr_since.pop(vector, None)
            v.isr_since[vector] = now
        # else: from the PIC (ExtINT), which sets no local-APIC ISR bit

    def eoi(self, line: TraceLine) -> None:
        fields = eoi_fields(line.msg)
        if fields is None:
            raise self.unreadable(line)
        self._retire(self.vcpu(fields[0]), fields[1], line)

    def _retire(self, v: VcpuReplay, vector: int, line: TraceLine) -> None:
        if vector < 0 or vector > 255:
            return  # KVM found the ISR empty: the EOI did nothing
        bit = 1 << vector
        was_pending = bool(v.apic.irr & bit)
        if not v.apic.isr & bit:
            if v.apic.irr & bit:  # delivered without an event the trace shows
                v.apic.irr &= ~bit
                v.irr_since.pop(vector, None)
            if not self.blind or not was_pending:
                v.corrections += 1
        v.apic.isr &= ~bit
        v.isr_since.pop(vector, None)
        v.inferred.discard(vector)
        self.note(v, line, ev.Eoi, vector)

    def apic_access(self, line: TraceLine) -> None:
        fields = apic_fields(line.msg)
        if fields is None:
            raise self.unreadable(line)
        write, reg, value = fields
        if reg >= 0:
            self.register(self.of_thread(line), write, reg, value, line)

    def msr(self, line: TraceLine) -> None:
        if self.has_apic_events:
            return  # x2APIC MSR accesses also go through kvm_lapic_reg_* and show as kvm_apic
        m = _MSR.match(line.msg)
        if not m:
            return
        msr = int(m[2], 16)
        if is_x2apic_msr(msr):
            self.register(self.of_thread(line), m[1] == "write", offset_of_msr(msr),
                          int(m[3], 16), line)

    def register(self, v: VcpuReplay, write: bool, reg: int, value: int, line: TraceLine) -> None:
        apic = v.apic
        if write:
            if reg == Reg.TPR:
                apic.tpr = value & 0xFF
                self.note(v, line, ev.TprWrite, value & 0xFF)
            elif reg == Reg.SVR:
                apic.write_svr(value)
                v.svr_known = True
            elif reg in _LVT_OFFSETS:
                apic.lvt[reg] = value & 0xFFFFFFFF
            elif reg == Reg.TIMER_INITIAL:
                apic.timer_initial = value
            elif reg == Reg.TIMER_DIVIDE:
                apic.timer_divide = value & 0b1011
            elif reg == Reg.EOI and not self.has_eoi_events:
                self._retire(v, highest(apic.isr), line)
                return
            else:
                return
            return
        self._observe(v, reg, value, line)

    def _observe(self, v: VcpuReplay, reg: int, value: int, line: TraceLine) -> None:
        """A register read: the APIC's own value; where the model differs, the read wins."""
        apic = v.apic
        for base, name in ((0x100, "isr"), (0x200, "irr")):
            if base <= reg < base + 0x80 and reg % 0x10 == 0:
                shift = 32 * ((reg - base) >> 4)
                bank = getattr(apic, name)
                seen = (bank >> shift) & 0xFFFFFFFF
                if seen != value:
                    setattr(apic, name, (bank & ~(0xFFFFFFFF << shift)) | (value << shift))
                    v.corrections += 1
                    if name == "isr":
                        for bit in range(32):
                            vec = shift + bit
                            if value >> bit & 1 and vec not in v.isr_since:
                                v.isr_since[vec] = line.time
                                v.inferred.add(vec)
                return
        if reg == Reg.TPR and apic.tpr != value & 0xFF:
            apic.tpr = value & 0xFF
            v.corrections += 1

    def inhibit(self, line: TraceLine) -> None:
        m = _INHIBIT.match(line.msg)
        if m:
            self.apicv = int(m[2], 16) == 0


_HANDLERS = {
    "kvm_entry": Replay.entry,
    "kvm_exit": Replay.entry,
    "kvm_apic_accept_irq": Replay.accept,
    "kvm_apicv_accept_irq": Replay.accept,
    "kvm_inj_virq": Replay.inject,
    "kvm_eoi": Replay.eoi,
    "kvm_pv_eoi": Replay.eoi,
    "kvm_apic": Replay.apic_access,
    "kvm_msr": Replay.msr,
    "kvm_apicv_inhibit_changed": Replay.inhibit,
}


def replay(text: str, name: str, pids: set[int] | None = None, *,
           observations: bool = False) -> Replay:
    """Replay the trace; with `pids`, only the events of those tasks (a VMM's vCPU threads and
    its kernel workers), since the kvm tracepoints are global to the host."""
    # Which kinds of events the trace has decides how others are read; a scan of the whole text
    # finds them at C speed before the one pass over the lines.
    injects = ": kvm_inj_virq:" in text or re.search(r": kvm_entry:[^\n]*intr_info 0x8", text)
    r = Replay(name, blind=not injects, has_eoi_events=": kvm_eoi:" in text,
               has_apic_events=": kvm_apic:" in text)
    r.text = text
    if observations:
        r.observations = {}
    tasks = r.run(events(text, name), pids)
    if not tasks:
        raise EvidenceError(f"{name}: no kvm interrupt events (kvm_apic_accept_irq, kvm_eoi, "
                            "kvm_inj_virq, kvm_apic...): record with `-e kvm`")
    r.tasks = Counter({f"{r.comms[p]}-{p}": n for p, n in tasks.items()})
    return r
