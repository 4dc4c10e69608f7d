"""The model executor of a step-list program: a model VM (`ModelVm`) with the generic guest
(`apiclab.guest.stepper.ProgramRun`) on it, run to its end, its budget or its time-out."""

from __future__ import annotations

import time

from apiclab.arch.lapic_state import LapicState
from apiclab.engine.events import ModelStopped
from apiclab.engine.trace import Trace
from apiclab.guest.program import Mode, Program
from apiclab.guest.stepper import (
    DEFAULT_LIMIT_NS,
    DEFAULT_MAX_STEPS,
    DEFAULT_TSC_HZ,
    ProgramRun,
)
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import Profile, get_profile
from apiclab.platform.cpu import InterruptStorm


def run_program(
    program: Program,
    *,
    lapic_image: LapicState | None = None,
    apicv: bool = False,
    tsc_hz: int = DEFAULT_TSC_HZ,
    profile: Profile | None = None,
    limit_ns: int = DEFAULT_LIMIT_NS,
    max_steps: int = DEFAULT_MAX_STEPS,
    timeout_s: float | None = None,
) -> Trace:
    """Run `program` on a model VM (KVM profile, default the newest) and return its trace.

    `lapic_image`, when given, is pushed with KVM_SET_LAPIC before the first entry, as the real
    backend does. A program that never reaches END (HLT with nothing to wake it) stops at
    `limit_ns` of virtual time, and its trace has no "end" event. So does a run stopped after
    `max_steps` engine callbacks or `timeout_s` seconds of wall time; its trace then ends with a
    `model-stopped` event (not guest-visible) saying which.
    """
    program.validate()
    trace = Trace()
    machine = ModelVm(profile or get_profile("kvm-6.14"), apicv=apicv, tsc_hz=tsc_hz, trace=trace,
                      cpus=program.cpus)
    for vcpu in machine.vcpus:
        vcpu.set_x2apic(program.mode == Mode.X2APIC_REAL)
    if lapic_image is not None:
        machine.vcpu.kvm_set_lapic(lapic_image)
    run = ProgramRun(program, machine)
    for cpu, vcpu in enumerate(machine.vcpus):
        vcpu.idt = run.handler_for(cpu)
        vcpu.vm_entry()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        finished = machine.engine.run_process(
            run.process(limit_ns), max_steps=max_steps,
            keep_going=None if deadline is None else lambda: time.monotonic() < deadline,
        )
    except InterruptStorm as storm:
        trace.record(machine.engine.now, ModelStopped, reason=str(storm))
        return trace
    if not finished:
        why = (f"wall-clock time-out of {timeout_s:g} s" if deadline and time.monotonic() >= deadline
               else f"budget of {max_steps} engine steps")
        trace.record(machine.engine.now, ModelStopped, reason=why)
    return trace
