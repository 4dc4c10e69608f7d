"""Skipping clock ticks that cannot change anything: the machine ends where the full run ends."""

from apiclab.arch.registers import Reg
from apiclab.engine.trace import Trace
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import get_profile

PERIOD = 15_625_000
CLOCK = 0xD1


def clock_into_a_stuck_vector(skip: bool, apicv: bool = True) -> tuple[ModelVm, list[int]]:
    """A guest whose handler never EOIs: the first tick stays in service and every later one
    finds the clock vector already pending — the phase-0 wait of a failing reboot."""
    m = ModelVm(get_profile("kvm-3.17"), apicv=apicv, tsc_hz=10**9, trace=Trace(recording=False))
    m.skip_quiet(skip)
    taken: list[int] = []
    vcpu = m.vcpu
    vcpu.idt = lambda vector: taken.append(m.engine.now)
    vcpu.vm_entry()
    vcpu.apic_write(Reg.SVR, 0x1FF)
    m.ioapic.set_redirection(2, CLOCK)
    m.hpet.start_periodic(PERIOD)
    vcpu.sti()
    return m, taken


def observable(m: ModelVm) -> tuple[object, ...]:
    lapic, vapic = m.vcpu.lapic, m.vcpu.vapic
    virtual = (vapic.rvi, vapic.svi, vapic.vppr, vapic.pir) if vapic else ()
    return (lapic.irr, lapic.isr, m.vcpu.deliveries, m.engine.next_time(), *virtual)


def test_skipped_ticks_leave_the_machine_where_the_full_run_leaves_it():
    for apicv in (True, False):
        full, full_taken = clock_into_a_stuck_vector(skip=False, apicv=apicv)
        fast, fast_taken = clock_into_a_stuck_vector(skip=True, apicv=apicv)
        for m in (full, fast):
            m.engine.run(until=3_000_000_000)
        assert observable(fast) == observable(full)
        assert fast_taken == full_taken == [PERIOD]
        assert fast.engine.scheduled < full.engine.scheduled / 10  # ~190 ticks were not run


def test_a_tick_after_a_bounded_run_sees_what_the_caller_changed_in_between():
    runs = []
    for skip in (False, True):
        m, taken = clock_into_a_stuck_vector(skip=skip)
        m.engine.run(until=1_000_000_000)
        m.vcpu.apic_write(Reg.EOI, 0)  # the clock leaves service: the next tick is delivered
        m.engine.run(until=2_000_000_000)
        runs.append((taken, observable(m)))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 1


def test_nothing_is_skipped_while_the_trace_records():
    m, _ = clock_into_a_stuck_vector(skip=False)
    m.engine.run(until=3_000_000_000)
    assert m.engine.scheduled > 190
