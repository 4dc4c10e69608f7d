"""The generic guest: runs a step-list `Program` on the model, as the bare-metal agent runs it on
real implementations, and records the same guest-visible events (see `apiclab.guest.program`).
The machine it runs on is the hypervisor's (`apiclab.hypervisor.program_run.run_program` builds
it); the guest sees it only through `apiclab.guest.platform`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from apiclab.arch import apic_base
from apiclab.arch.lapic import GeneralProtection
from apiclab.arch.registers import APIC_BASE_DEFAULT, IA32_TSC_DEADLINE, Reg
from apiclab.arch.vectors import vectors_of
from apiclab.engine import events as ev
from apiclab.engine.core import Process, Sleep, Wait
from apiclab.guest.platform import GuestCpu, GuestPlatform
from apiclab.guest.program import (
    IA32_APIC_BASE_MSR,
    SELF_NMI_ICR,
    BugcheckIfTimeout,
    Cli,
    End,
    Hlt,
    In,
    Lint1Pulse,
    MmioRead,
    MmioWrite,
    Mode,
    Out,
    Pause,
    Program,
    Rdmsr,
    Read,
    Sti,
    StiHlt,
    TscDeadline,
    Write,
    Wrmsr,
)
from apiclab.guest.program import Wait as WaitFor
from apiclab.platform.pc import OPEN_BUS

# the page base of IA32_APIC_BASE (§10.4.4 Figure 10-5), below 4 GiB where the agent reaches it
APIC_BASE_PAGE = 0xFFFFF000
DEFAULT_TSC_HZ = 2_000_000_000
DEFAULT_LIMIT_NS = 10 * 1_000_000_000
# Engine callbacks (timer expiries, wake-ups) one run may take. The built-in cases take at most
# a dozen and a 1 ms periodic timer over the whole 10 s limit takes 10,000; a timer firing every
# few ns would take billions, so this budget (a few seconds of wall time) and `timeout_s` stop
# it, as a real backend's time-out stops a guest that never ends.
DEFAULT_MAX_STEPS = 20_000
STOPPED = ev.ModelStopped.kind  # trace event of a run stopped by its budget or time-out (not visible)


class ProgramRun:
    """One run of a program on a model machine."""

    def __init__(self, program: Program, machine: GuestPlatform) -> None:
        self.program = program
        self.m = machine
        self.counts: Counter[tuple[int, int]] = Counter()  # (cpu, vector) -> handler runs
        self.finished = False
        self.last_wait_timed_out = False

    # What the guest sees, read the way the agent reads it: through APIC register reads.
    def _tag(self, cpu: int) -> dict[str, int]:
        """The `cpu` field events carry in a program for several CPUs (none with one CPU, so
        one-CPU observations stay as they were)."""
        return {"cpu": cpu} if self.program.cpus > 1 else {}

    def _read_bank(self, vcpu: GuestCpu, base: int) -> list[int]:
        words = [vcpu.apic_read(base + 0x10 * i) for i in range(8)]
        bits = 0
        for i, word in enumerate(words):
            bits |= word << (32 * i)
        return vectors_of(bits)

    def _runs(self, cpu: int) -> int:
        """Handler runs on `cpu` so far (NMIs included)."""
        return sum(n for (c, _), n in self.counts.items() if c == cpu)

    def handler_for(self, cpu: int) -> Callable[[int], None]:
        return lambda vector: self.handler(vector, cpu)

    def handler(self, vector: int, cpu: int = 0) -> None:
        self.counts[cpu, vector] += 1
        policy = self.program.handler(vector)
        vcpu = self.m.vcpus[cpu]
        if policy.log:
            self.m.trace.record(
                self.m.engine.now, ev.Interrupt, vector=vector,
                isr=self._read_bank(vcpu, Reg.ISR0), irr=self._read_bank(vcpu, Reg.IRR0),
                tmr=self._read_bank(vcpu, Reg.TMR0), ppr=vcpu.apic_read(Reg.PPR),
                **self._tag(cpu),
            )
        if policy.nmis and self.counts[cpu, vector] == 1:
            self._send_nmis(vcpu, cpu, policy.nmis, policy.log)
        if policy.eoi:
            vcpu.apic_write(Reg.EOI, 0)

    def _send_nmis(self, vcpu: GuestCpu, cpu: int, nmis: int, log: bool) -> None:
        """`Handler.nmis`, as the agent's handler does it: `nmis` ICR writes of an NMI to this
        CPU's own APIC ID (CPU k has ID k; the destination field is bits 63:32 in x2APIC mode,
        63:56 in xAPIC mode, §10.6.1, §10.12.9), then, if it logs, the ICR read back."""
        dest = cpu << 32 if self.program.mode == Mode.X2APIC_REAL else cpu << 56
        for _ in range(nmis):
            self._write(vcpu, Reg.ICR_LOW, SELF_NMI_ICR | dest)
        if log:
            self.m.trace.record(self.m.engine.now, ev.Read, reg=Reg.ICR_LOW,
                                value=self._read(vcpu, Reg.ICR_LOW), **self._tag(cpu))

    def _page_decoded(self, vcpu: GuestCpu) -> bool:
        """Whether the agent's xAPIC access, a load or store at 0xFEE00000 + offset, reaches the
        APIC: only while it is globally enabled in xAPIC mode with its page there (§10.4.3: a
        disabled APIC is as none; §10.4.5: the page moves with the base; §10.12.2: x2APIC mode
        turns the page off). Else nothing decodes the address: a load reads the PC's open bus,
        a store goes nowhere. A program in x2APIC mode reaches the APIC through MSRs."""
        if self.program.mode != Mode.XAPIC_PM32:
            return True
        base = vcpu.guest_rdmsr(IA32_APIC_BASE_MSR)
        return (bool(base & apic_base.EN) and not base & apic_base.EXTD
                and base & APIC_BASE_PAGE == APIC_BASE_DEFAULT)

    def _read(self, vcpu: GuestCpu, offset: int) -> int:
        return vcpu.apic_read(offset) if self._page_decoded(vcpu) else OPEN_BUS

    def _write(self, vcpu: GuestCpu, offset: int, value: int) -> None:
        if not self._page_decoded(vcpu):
            return
        if offset == Reg.ICR_LOW and not vcpu.lapic.x2apic:
            vcpu.apic_write(Reg.ICR_HIGH, value >> 32)  # xAPIC: high dword first (§10.6.1)
            vcpu.apic_write(Reg.ICR_LOW, value & 0xFFFFFFFF)
        else:
            vcpu.apic_write(offset, value)

    def process(self, limit_ns: int) -> Process:
        m = self.m
        trace = m.trace
        for step in self.program.steps:
            vcpu, cpu = m.vcpus[step.cpu], step.cpu
            tag = self._tag(cpu)
            if vcpu.wait_for_sipi and not isinstance(step, End):
                continue  # a CPU waiting for SIPI runs no code: its steps do nothing
            match step:
                case End():
                    break
                case Write(reg=reg, value=value):
                    self._write(vcpu, reg, value)
                case Read(reg=reg):
                    trace.record(m.engine.now, ev.Read, reg=reg, value=self._read(vcpu, reg), **tag)
                case Sti():
                    vcpu.sti()
                case Cli():
                    vcpu.cli()
                case Hlt():
                    # Anything deliverable was delivered already (delivery is checked on every
                    # change), so HLT waits for the next delivery.
                    woke = yield Wait(vcpu.delivered, limit_ns)
                    if not woke:
                        return  # halted for good: the run times out
                case WaitFor(vector=vector, count=target, ticks=ticks):
                    deadline = vcpu.rdtsc() + ticks
                    while self.counts[cpu, vector] < target and vcpu.rdtsc() <= deadline:
                        yield Wait(vcpu.delivered, min(m.tsc.ns_at(deadline + 1), limit_ns))
                        if m.engine.now >= limit_ns:
                            return
                    self.last_wait_timed_out = self.counts[cpu, vector] < target
                    trace.record(
                        m.engine.now, ev.WaitDone, vector=vector, count=self.counts[cpu, vector],
                        outcome="timeout" if self.last_wait_timed_out else "done", **tag,
                    )
                case TscDeadline(ticks=ticks):
                    vcpu.write_msr(IA32_TSC_DEADLINE, vcpu.rdtsc() + ticks)
                case BugcheckIfTimeout(code=code, params=(p0, p1)):
                    if self.last_wait_timed_out:
                        trace.record(m.engine.now, ev.Bugcheck, code=code, params=[p0, p1, 0, 0],
                                     **tag)
                        break
                case Pause(ticks=ticks):
                    yield Sleep(min(m.tsc.ns_at(ticks), max(limit_ns - m.engine.now, 0)))
                    if m.engine.now >= limit_ns:
                        return  # paused past the run's limit: the run times out
                case Out(port=port, value=value):
                    m.io_out(port, value)
                case In(port=port):
                    trace.record(m.engine.now, ev.Read, port=port, value=m.io_in(port), **tag)
                case MmioWrite(addr=addr, value=value):
                    m.mmio_write(addr, value)
                case MmioRead(addr=addr):
                    trace.record(m.engine.now, ev.Read, addr=addr, value=m.mmio_read(addr), **tag)
                case Rdmsr(msr=msr):
                    try:
                        value = vcpu.guest_rdmsr(msr)
                    except GeneralProtection:
                        trace.record(m.engine.now, ev.Fault, vector=13, **tag)
                    else:
                        trace.record(m.engine.now, ev.Read, msr=msr, value=value, **tag)
                case Wrmsr(msr=msr, value=value):
                    try:
                        vcpu.guest_wrmsr(msr, value)
                    except GeneralProtection:
                        trace.record(m.engine.now, ev.Fault, vector=13, **tag)
                case Lint1Pulse():
                    # the agent waits at this step until the host has pulsed; on the model the
                    # pulse and what it raises happen at once
                    m.pulse_lint1()
                case StiHlt():
                    # STI's shadow holds an interrupt pending at STI until HLT has begun, and
                    # that interrupt wakes it (SDM vol. 2B STI): HLT waits only if none came.
                    before = self._runs(cpu)
                    vcpu.sti()
                    if self._runs(cpu) == before:
                        woke = yield Wait(vcpu.delivered, limit_ns)
                        if not woke:
                            return
        trace.record(m.engine.now, ev.End)
        self.finished = True

