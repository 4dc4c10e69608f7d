"""The machine's state key (what the counting run's skip of quiet steps relies on): every
attribute a step can read or write changes the key, and only the documented exceptions do not."""

from __future__ import annotations

import pytest

from apiclab import native
from apiclab.arch.registers import Reg
from apiclab.engine.core import Handle
from apiclab.engine.trace import Trace
from apiclab.guest.windows7 import Windows7, Windows7Config
from apiclab.hypervisor import machine as machine_module
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import get_profile

# References fixed for a machine's life, the vCPU's delivery count (kept apart: `state`), and
# the objects that are keyed by their own attributes (the reference itself says nothing more).
NOT_IN_KEY = {
    "ModelVm": {"engine", "trace", "profile", "tsc", "ioapic", "vcpu", "vcpus", "hpet", "pit",
                "idle_ticks", "quiet", "guest_state"},
    "KvmVcpu": {"engine", "trace", "profile", "tsc", "lapic", "vapic", "timer", "eoi_broadcast",
                "delivered", "deliveries", "_parked_vapic", "registers_recorded"},
    "LocalApic": set(),
    "VirtualApic": {"page"},
    "LapicTimer": {"engine", "lapic", "tsc", "fire", "idle", "quiet"},
    "Ioapic": set(),
    "HpetComparator": {"engine", "pin", "edge", "idle"},
    "Pit": {"engine", "out0", "counters"},
    "Counter": set(),
    "Windows7": {"m", "cfg"},  # Windows7.FIXED_REFERENCES
}


def machine() -> tuple[ModelVm, Windows7]:
    m = ModelVm(get_profile("kvm-3.17"), apicv=True, tsc_hz=10**9, trace=Trace(recording=False))
    guest = Windows7(m, Windows7Config())
    m.skip_quiet(True, (guest,))
    m.vcpu.vm_entry()
    guest.run_os()
    m.vcpu.apic_write(Reg.TIMER_INITIAL, 1000)  # a running timer: its start time is state
    return m, guest


def objects(m: ModelVm, guest: Windows7) -> list[object]:
    vcpu = m.vcpu
    return [m, vcpu, vcpu.lapic, vcpu.vapic, vcpu.timer, m.ioapic, m.hpet, m.pit,
            *m.pit.counters, guest]


def changed(value: object) -> object:
    if isinstance(value, Handle):
        return None  # a scheduled expiry no longer pending
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [changed(value[0]), *value[1:]] if value else [0]
    if isinstance(value, dict):
        key = next(iter(value))
        return {**value, key: value[key] + 1}
    if value is None:
        return Handle(0, lambda: None)  # something pending where nothing was
    return object()  # a reference (a handler, a callback, a configuration) to something else


@pytest.mark.skipif(native.compiled(machine_module),
                    reason="the model is compiled (APICLAB_NATIVE=1): its attributes are typed and "
                           "listed by no __dict__; the key's coverage is checked on the Python model")
def test_every_attribute_of_every_stateful_object_is_in_the_key_or_listed_as_not() -> None:
    m, guest = machine()
    for obj in objects(m, guest):
        kind = type(obj).__name__
        assert kind in NOT_IN_KEY, f"{kind}: a new stateful class; key it in ModelVm.state_key"
        for name, value in list(vars(obj).items()):
            if name in NOT_IN_KEY[kind]:
                continue
            before = m.state_key()
            setattr(obj, name, changed(value))
            try:
                assert m.state_key() != before, f"{kind}.{name} is not in the state key"
            finally:
                setattr(obj, name, value)
            assert m.state_key() == before


@pytest.mark.parametrize("name", ["deliveries"])
def test_the_delivery_count_is_kept_apart_from_the_key_but_not_from_the_state(name: str) -> None:
    m, _ = machine()
    key, state = m.state_key(), m.state()
    setattr(m.vcpu, name, getattr(m.vcpu, name) + 1)
    assert m.state_key() == key and m.state() != state


def test_the_timer_start_is_state_only_while_the_timer_counts() -> None:
    m, _ = machine()
    lapic = m.vcpu.lapic
    before = m.state_key()
    lapic.timer_start_ns += 5
    assert m.state_key() != before
    lapic.timer_initial = 0  # §10.5.4: stopped; no rule reads the start until a new count
    stopped = m.state_key()
    lapic.timer_start_ns += 5
    assert m.state_key() == stopped


def test_a_scheduled_expiry_counts_by_whether_it_is_pending_not_by_when() -> None:
    m, _ = machine()
    before = m.state_key()
    m.hpet.start_periodic(m.hpet.period_ns)  # the same period re-armed later: the same state
    assert m.state_key() == before
    m.hpet.stop()
    assert m.state_key() != before
