"""`apiclab kvm storm`: the seed's reboot storm on the host's KVM, in place, beside the model's.

Host: one `InPlaceVm`; per reboot the guest runs one cycle of `storm_guest.storm_program` (boot,
clock wait, Windows running with its traffic, CLI, pending vectors, reboot), the host reads the
LAPIC back (KVM_GET_LAPIC), resets the vCPU and memory as QEMU does, and reads it back once more.
Model: the same program on one model VM with the profile and APICv that match the host, reset the
same way between cycles. Per reboot both give an outcome ("tick" or the bug-check code, e.g.
"0x5C") and a guest-visible trace; where they differ, `deviation.deviation` gives the evidence.

Speed: a storm decodes nothing twice. The agent's log of a cycle is keyed by its records without
their TSC fields, the LAPIC read-back by its IRR/ISR/PPR/TPR bytes; only new keys are decoded. The
model is deterministic and its state after a reset (`vcpu_state_key`, times excluded as in
`apiclab explore`) fixes the next cycle, so it simulates cycles until that state repeats and then
repeats the period; `ModelStorm.simulated` says how many cycles were simulated.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from apiclab.arch.ioapic import Ioapic
from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import IA32_TSC_DEADLINE, Reg
from apiclab.arch.vectors import vectors_of
from apiclab.backends.kvm.deviation import deviation, trace_difference
from apiclab.backends.kvm.deviation import outcome as trace_outcome
from apiclab.backends.kvm.inplace import Cycle, InPlaceVm
from apiclab.backends.kvm.system import Kvm
from apiclab.engine import events as ev
from apiclab.engine.trace import Trace
from apiclab.guest.agent import log
from apiclab.guest.agent.image import build_image
from apiclab.guest.program import Mode, Program
from apiclab.guest.stepper import DEFAULT_LIMIT_NS, ProgramRun
from apiclab.hypervisor.machine import ModelVm, reset_image
from apiclab.hypervisor.profiles import Profile
from apiclab.hypervisor.state_key import vcpu_state_key

MAX_DEVIATION_KINDS = 5
TRACE_NOTE = ("a storm captures no tracepoints (tracefs per reboot would dominate its cost); "
              "`apiclab kvm reproduce --trace` shows them for the single-boot cases")


def cycle_outcome(trace: Trace) -> str:
    """"tick", the bug-check code as "0x5C", "hang" or "no-wait"."""
    kind = trace_outcome(trace)
    if kind == "bugcheck":
        code = next(e.code for e in trace.events if isinstance(e, ev.Bugcheck))
        return f"0x{code:X}"
    return kind


def _plain(trace: Trace) -> list[dict[str, Any]]:
    return [{"kind": e.kind, **ev.fields_of(e)} for e in trace.guest_visible()]


# --- the host side ----------------------------------------------------------------------------

@dataclass
class HostStorm:
    outcomes: Counter[str] = field(default_factory=Counter)
    # (index into `traces`, key of `lapic_pages` at the reboot, how many reboots in a row):
    # run-length encoded, so a storm's memory does not grow with its length
    runs: list[list[Any]] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)  # one per distinct log
    lapic_at_reboot: Counter[bytes] = field(default_factory=Counter)
    lapic_after_reset: Counter[bytes] = field(default_factory=Counter)
    lapic_pages: dict[bytes, LapicState] = field(default_factory=dict)
    exits: int = 0
    seconds: float = 0.0
    tsc_khz: int = 0


def _log_key(output: bytes) -> bytes:
    """The agent's records without their TSC fields: equal keys decode to equal events but for
    times (a record is "@", a tag, 16 TSC digits, fields)."""
    return b"\n".join(line[:2] + line[18:] for line in output.split(b"\n") if line[:1] == b"@")


def _lapic_key(page: bytes) -> bytes:
    """TPR, PPR, ISR and IRR of a register page: what the storm reports of it."""
    return page[Reg.TPR:Reg.TPR + 4] + page[Reg.PPR:Reg.PPR + 4] + \
        page[Reg.ISR0:Reg.TMR0] + page[Reg.IRR0:Reg.ESR]


def _complete_lines(output: bytes) -> bytes:
    """Drop a record cut off by the watchdog (no newline yet)."""
    end = output.rfind(b"\n")
    return output[:end + 1] if end >= 0 else b""


def run_host_storm(kvm: Kvm, program: Program, reboots: int, *,
                   progress: Callable[[int], None] | None = None,
                   cycle_timeout_s: float = 5.0, coalesce_log: bool = True) -> HostStorm:
    """The storm on the host (module docstring); `coalesce_log=False` makes every byte of the
    agent's log an exit to user space, as before KVM_REGISTER_COALESCED_MMIO (inplace.py)."""
    result = HostStorm()
    by_log: dict[bytes, int] = {}
    with InPlaceVm(build_image(program), kvm, cycle_timeout_s=cycle_timeout_s,
                   coalesce_log=coalesce_log) as vm:
        vm.set_reset_image(reset_image())
        result.tsc_khz = vm.tsc_khz
        readback = vm.read_lapic
        start = time.perf_counter()
        vm.reset()  # the first boot starts from the same state as every later one
        for index in range(reboots):
            cycle: Cycle = vm.run_cycle()
            vm.reset()
            after = readback()
            result.exits += cycle.exits
            key = _log_key(cycle.output) + cycle.stop.encode()
            slot = by_log.get(key)
            if slot is None:
                slot = by_log[key] = len(result.traces)
                result.traces.append(_decode(cycle, result.tsc_khz))
            result.outcomes[cycle_outcome(result.traces[slot])] += 1
            for counter, page in ((result.lapic_at_reboot, cycle.lapic),
                                  (result.lapic_after_reset, after)):
                lkey = _lapic_key(page)
                counter[lkey] += 1
                if lkey not in result.lapic_pages:
                    result.lapic_pages[lkey] = LapicState.decode(page)
            lkey = _lapic_key(cycle.lapic)
            last = result.runs[-1] if result.runs else None
            if last is not None and last[0] == slot and last[1] == lkey:
                last[2] += 1
            else:
                result.runs.append([slot, lkey, 1])
            if progress is not None:
                progress(index + 1)
        result.seconds = time.perf_counter() - start
    return result


def _decode(cycle: Cycle, tsc_khz: int) -> Trace:
    trace = log.decode(_complete_lines(cycle.output), tsc_khz)
    if cycle.stop != "exit":
        last = trace.events[-1].time if trace.events else 0
        trace.record(last, ev.Timeout if cycle.stop.startswith("hang") else ev.VmStop,
                     reason=cycle.stop)
    return trace


def lapic_summary(state: LapicState) -> dict[str, Any]:
    return {"irr": vectors_of(state.irr), "isr": vectors_of(state.isr),
            "ppr": state.get(Reg.PPR), "tpr": state.get(Reg.TPR)}


# --- the model side ---------------------------------------------------------------------------

@dataclass
class ModelStorm:
    profile: str
    apicv: bool
    cycles: list[Trace]  # the simulated cycles; reboot i is `trace_at(i)`
    outcomes: Counter[str]
    simulated: int  # cycles actually simulated; the rest repeat a period of them
    period: int
    lapic_at_reboot: Counter[str]  # KVM_GET_LAPIC on the model before each reset, summarized

    def index_of(self, reboot: int) -> int:
        if reboot < self.simulated:
            return reboot
        start = self.simulated - self.period
        return start + (reboot - start) % self.period

    def trace_at(self, reboot: int) -> Trace:
        return self.cycles[self.index_of(reboot)]


def _model_reset(machine: ModelVm) -> None:
    """The host's `InPlaceVm.reset` on the model: devices, then the CPU, KVM_SET_LAPIC with the
    reset image, the TSC-deadline MSR back to 0, and KVM_RUN from the reset vector."""
    vcpu = machine.vcpu
    vcpu.vm_exit()
    machine.hpet.stop()
    machine.pit.reset()
    machine.ioapic = Ioapic()
    vcpu.timer.stop()
    vcpu.reset_cpu()
    vcpu.kvm_set_lapic(reset_image())
    vcpu.write_msr(IA32_TSC_DEADLINE, 0)
    vcpu.vm_entry()


def run_model_storm(program: Program, profile: Profile, *, apicv: bool, reboots: int,
                    tsc_hz: int) -> ModelStorm:
    program.validate()
    trace = Trace()
    machine = ModelVm(profile, apicv=apicv, tsc_hz=tsc_hz, trace=trace)
    machine.vcpu.lapic.x2apic = program.mode == Mode.X2APIC_REAL
    cycles: list[Trace] = []
    pages: list[str] = []
    seen: dict[Any, int] = {}
    start_of_period = 0
    while len(cycles) < reboots:
        _model_reset(machine)
        key = vcpu_state_key(machine.vcpu)
        if key in seen:  # the model is a function of this state: the cycles repeat from here
            start_of_period = seen[key]
            break
        seen[key] = len(cycles)
        trace.events.clear()
        run = ProgramRun(program, machine)
        machine.vcpu.idt = run.handler
        machine.engine.run_process(run.process(machine.engine.now + DEFAULT_LIMIT_NS))
        cycles.append(Trace(list(trace.events)))
        pages.append(json.dumps(lapic_summary(machine.vcpu.kvm_get_lapic()), sort_keys=True))
    simulated = len(cycles)
    storm = ModelStorm(profile.name, apicv, cycles, Counter(), simulated,
                       simulated - start_of_period, Counter())
    # counts per simulated cycle, times how often each recurs in `reboots`
    times = Counter(storm.index_of(i) for i in range(min(reboots, simulated)))
    if reboots > simulated:
        whole, extra = divmod(reboots - simulated, storm.period)
        for k in range(storm.period):
            times[start_of_period + k] += whole + (k < extra)
    for i, n in times.items():
        storm.outcomes[cycle_outcome(cycles[i])] += n
        storm.lapic_at_reboot[pages[i]] += n
    return storm


# --- side by side -----------------------------------------------------------------------------

def decisive(trace: Trace) -> Trace:
    """The trace without the clock wait's tick count: how many ticks land before the agent's loop
    sees the first depends on each side's exit cost and delivery latency, not on the APIC's rules
    (bench/kvm_run.py compares QEMU and KVM the same way). The outcome of the wait stays."""
    return Trace(msgspec.structs.replace(e, count=None) if isinstance(e, ev.WaitDone) else e
                 for e in trace.events)


def deviations(host: HostStorm, model: ModelStorm, program: Program) -> dict[str, Any]:
    """Reboots whose guest-visible events differ (times and the wait's tick count ignored, see
    `decisive`), grouped by the pair of traces, with the evidence of the first of each kind (as
    `apiclab kvm reproduce` gives it)."""
    kinds: dict[tuple[int, int], dict[str, Any]] = {}
    model_ids: dict[int, int] = {}
    differing = 0
    same_cache: dict[tuple[int, int], bool] = {}
    first = 0
    for slot, lkey, count in host.runs:
        for index in range(first, first + count):
            model_trace = model.trace_at(index)
            mid = model_ids.setdefault(id(model_trace), len(model_ids))
            pair = (slot, mid)
            same = same_cache.get(pair)
            if same is None:
                same = same_cache[pair] = trace_difference(decisive(host.traces[slot]),
                                                           decisive(model_trace)) is None
            if same:
                continue
            differing += 1
            if pair in kinds:
                kinds[pair]["reboots"] += 1
                continue
            if len(kinds) >= MAX_DEVIATION_KINDS:
                continue
            evidence = deviation(decisive(host.traces[slot]), decisive(model_trace),
                                 host_lapic=lapic_summary(host.lapic_pages[lkey]),
                                 tracepoints=None, program=program, trace_note=TRACE_NOTE)
            kinds[pair] = {"reboots": 1, "first_reboot": index, "evidence": evidence,
                           "host_trace": _plain(host.traces[slot]),
                           "model_trace": _plain(model_trace)}
        first += count
    return {"reboots": differing, "kinds": list(kinds.values())}


def lapic_table(counter: Counter[bytes], pages: dict[bytes, LapicState]) -> list[dict[str, Any]]:
    return [{"reboots": n, **lapic_summary(pages[key])} for key, n in counter.most_common()]
