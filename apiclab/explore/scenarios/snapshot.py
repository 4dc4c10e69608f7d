"""The `snapshot` family: QEMU's savevm/loadvm of a VM whose LAPIC timer is armed — the path of
967235d32032, 8e6ed96cdd50 and 9cfec6d097c6 (docs/design.md §3).

The savevm and loadvm themselves are the model VM's (`ModelVm.snapshot` / `ModelVm.restore`,
`apiclab.hypervisor.savevm` says what QEMU carries across): the register page without a current
count — TMCCT goes back as 0, so KVM restarts a one-shot timer as if its count had run out — and
the TSC-deadline MSR, written after KVM_SET_LAPIC.

Draws, in order (zero is the simplest):
1. the timer mode (one-shot, TSC-deadline; SDM §10.5.4 order);
2. how long after the snapshot the timer is due (1-4 ms), and how long it has run before it
   (0-3 ms: a one-shot's initial count is the sum);
3. how many device interrupts are pending or in service at the snapshot (0-2), and for each its
   vector and where it is: in (V)IRR, so in the snapshot's image; posted in PIR after the vCPU
   stopped, so only in the hypervisor's posted-interrupt descriptor at the restore; or in service
   (ISR, SVI), its handler interrupted by the snapshot and finishing with an EOI after the restore;
   — checkpoint: the vCPU state, the image and the deadline, relative to now —
4. the downtime before the restore (0-3 ms): a TSC deadline has passed at the restore iff the
   downtime reaches its due time.
After the restore the guest runs 10 ms with interrupts enabled and handlers that EOI.
"""

from __future__ import annotations

from apiclab.arch.lapic import TIMER_MODE_SHIFT, TIMER_ONE_SHOT, TIMER_TSC_DEADLINE
from apiclab.arch.registers import IA32_TSC_DEADLINE, Reg
from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.trace import Trace
from apiclab.explore.choices import checkpoint
from apiclab.explore.scenarios.state import vcpu_state_key
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import Profile

NAME = "snapshot"
SUMMARY = "QEMU savevm/loadvm with the LAPIC timer armed and interrupts pending in IRR or PIR"
TSC_HZ = 2_600_000_000
MS = 1_000_000
TIMER_VECTOR = 0xEC  # Linux's LOCAL_TIMER_VECTOR
MODES = ("one-shot", "tsc-deadline")
DEVICE_VECTORS = (0x51, 0x61, 0xB1, 0xE1)
PLACES = (
    "in IRR (in the image)",
    "posted in PIR at the restore",
    "in service (its handler EOIs after the restore)",
)
MAX_PENDING = 2
RUN_AFTER_RESTORE_NS = 10 * MS


def run(profile: Profile, apicv: bool, choices: Choices) -> Trace:
    trace = Trace()
    machine = ModelVm(profile, apicv=apicv, tsc_hz=TSC_HZ, trace=trace)
    vcpu, engine = machine.vcpu, machine.engine
    vcpu.idt = lambda vector: vcpu.apic_write(Reg.EOI, 0)  # a running OS: handlers EOI
    vcpu.vm_entry()
    vcpu.apic_write(Reg.SVR, 0x1FF)

    mode = choices.pick(MODES)
    due_ns = (1 + choices.below(4)) * MS  # still to run at the snapshot
    elapsed_ns = choices.below(4) * MS  # already run at the snapshot
    if mode == "one-shot":
        vcpu.apic_write(Reg.TIMER_DIVIDE, 0b1011)  # divide by 1: one count per bus ns
        vcpu.apic_write(Reg.LVT_TIMER, TIMER_ONE_SHOT << TIMER_MODE_SHIFT | TIMER_VECTOR)
        count = (due_ns + elapsed_ns) * vcpu.lapic.bus_hz // 10**9
        vcpu.apic_write(Reg.TIMER_INITIAL, count)
    else:
        vcpu.apic_write(Reg.LVT_TIMER, TIMER_TSC_DEADLINE << TIMER_MODE_SHIFT | TIMER_VECTOR)
        vcpu.write_msr(IA32_TSC_DEADLINE, vcpu.rdtsc() + machine.tsc.read(due_ns + elapsed_ns))
    vcpu.sti()
    engine.run(until=engine.now + elapsed_ns)
    pending = [
        (choices.pick(DEVICE_VECTORS), choices.below(len(PLACES)))
        for _ in range(choices.below(MAX_PENDING + 1))
    ]
    trace.record(
        engine.now, ev.Choice,
        text=f"{mode} timer {TIMER_VECTOR:#04x} armed {elapsed_ns // MS} ms before the snapshot, "
        f"due {due_ns // MS} ms after it",
    )
    for vector, place in pending:
        trace.record(engine.now, ev.Choice, text=f"vector {vector:#04x} pending {PLACES[place]}")

    in_service = [vector for vector, place in pending if place == 2]
    vcpu.idt = lambda vector: None  # handlers interrupted by the snapshot: no EOI yet
    for vector in in_service:
        vcpu.accept_irq(vector, source="device")
    vcpu.idt = lambda vector: vcpu.apic_write(Reg.EOI, 0)
    vcpu.cli()  # the guest is in a section with interrupts off, so arrivals stay pending
    for vector, place in pending:
        if place == 0:
            vcpu.accept_irq(vector, source="device")
    # savevm: QEMU stops the vCPU and keeps the APIC state and the TSC-deadline MSR.
    saved = machine.snapshot()
    deadline = saved.tsc_deadline
    trace.record(
        engine.now, ev.SnapshotTaken, timer_armed=True, timer_vector=TIMER_VECTOR, timer_mode=mode,
        timer_remaining_ns=due_ns, tsc_deadline=deadline, **vcpu.registers(),
    )
    for vector, place in pending:
        if place == 1:
            vcpu.accept_irq(vector, source="device")  # vCPU out of the guest: posted, not synced

    checkpoint(choices, (
        vcpu_state_key(vcpu), tuple(sorted(saved.image.regs.items())),
        deadline - vcpu.rdtsc() if deadline else 0,
    ))
    downtime_ns = choices.below(4) * MS
    trace.record(engine.now, ev.Choice, text=f"restored {downtime_ns // MS} ms after the snapshot")
    engine.run(until=engine.now + downtime_ns)
    tsc = vcpu.rdtsc()
    one_shot = mode == "one-shot"
    passed = mode == "tsc-deadline" and deadline <= tsc
    trace.record(
        engine.now, ev.Restore, tsc=tsc, tsc_deadline=deadline, one_shot_tmcct_zero=one_shot,
        text="loadvm: QEMU puts the APIC back with KVM_SET_LAPIC"
        + (", TMCCT = 0 (it keeps no current count), so KVM takes the one-shot timer as run out"
           if one_shot else
           f", then the TSC deadline {deadline} with KVM_SET_MSRS at TSC {tsc}"
           + (": it has passed, the timer fires at once" if passed else "")) + ".",
    )
    armed = machine.restore(saved)
    regs = vcpu.registers()
    waiting = TIMER_VECTOR in regs["irr"] or TIMER_VECTOR in regs.get("pir", [])
    trace.record(
        engine.now, ev.TimerAfterRestore, armed=armed, pending=waiting,
        text="After the restore the timer "
        + ("is armed." if armed else
           f"interrupt {TIMER_VECTOR:#04x} is pending." if waiting else
           f"is not armed and {TIMER_VECTOR:#04x} is not pending: the interrupt is lost."),
        **regs,
    )
    vcpu.vm_entry()
    for vector in sorted(in_service, reverse=True):  # the interrupted handlers finish
        trace.record(engine.now, ev.GuestNote, text=f"the handler of {vector:#04x} finishes: EOI")
        vcpu.apic_write(Reg.EOI, 0)
    vcpu.sti()
    engine.run(until=engine.now + RUN_AFTER_RESTORE_NS)
    trace.record(engine.now, ev.End, **vcpu.registers())
    return trace
