"""Skipping the interrupts that change nothing (`QuietSteps`): a run with the skip ends where the
full run ends, and a storm counted with it gives the traced storm's counts."""

from __future__ import annotations

import random

import pytest

from apiclab.engine.trace import Trace
from apiclab.guest.linux import LinuxConfig
from apiclab.guest.windows7 import Windows7, Windows7Config
from apiclab.hypervisor.machine import ModelVm
from apiclab.hypervisor.profiles import get_profile
from apiclab.scenarios.win7_reboot import run_storm

VECTORS = (0x51, 0x61, 0xB1, 0xE1)


def windows_under_traffic(skip: bool, apicv: bool, *, cli_at: int) -> tuple[ModelVm, int]:
    """Windows running with its clock, and 300 interrupts at seeded times; interrupts are
    disabled part way (`cli_at`), so the later ones stay pending: not every arrival is quiet."""
    m = ModelVm(get_profile("kvm-3.17"), apicv=apicv, tsc_hz=10**9, trace=Trace(recording=False))
    guest = Windows7(m, Windows7Config())
    m.skip_quiet(skip, (guest,))
    m.vcpu.vm_entry()
    guest.run_os()
    draw = random.Random(3)
    t = 0
    for k in range(300):
        t += draw.randrange(1, 3_000_000)
        vector = VECTORS[draw.randrange(len(VECTORS))]
        m.engine.at(t, lambda v=vector: m.interrupt(v, "device"))
        if k == cli_at:
            m.engine.at(t, m.vcpu.cli)
    m.engine.run(until=t + 1)
    return m, m.quiet.skipped


def observable(m: ModelVm) -> tuple[object, ...]:
    lapic, vapic = m.vcpu.lapic, m.vcpu.vapic
    virtual = (vapic.rvi, vapic.svi, vapic.vppr, vapic.pir, vapic.on) if vapic else ()
    return (lapic.irr, lapic.isr, lapic.tmr, lapic.tpr, m.vcpu.if_flag, m.vcpu.deliveries,
            m.engine.now, m.engine.next_time(), *virtual)


@pytest.mark.parametrize("apicv", [True, False])
def test_skipped_interrupts_leave_the_machine_where_the_full_run_leaves_it(apicv: bool) -> None:
    full, none_skipped = windows_under_traffic(False, apicv, cli_at=250)
    fast, skipped = windows_under_traffic(True, apicv, cli_at=250)
    assert none_skipped == 0 and skipped > 200  # most arrivals found a state seen before
    assert observable(fast) == observable(full)
    assert fast.vcpu.deliveries == full.vcpu.deliveries > 250
    assert fast.vcpu.lapic.irr or (fast.vcpu.vapic and fast.vcpu.vapic.pir)  # pending after CLI


@pytest.mark.parametrize(
    ("name", "apicv", "options"),
    [
        ("kvm-3.17", True, {}),
        ("kvm-3.19", True, {}),
        ("kvm-3.17", False, {}),
        ("kvm-3.17", True, {"power_cycle_after_bsod": True}),
        ("kvm-6.14", True, {"config": Windows7Config(firmware_enables_apic=False)}),
        ("kvm-3.17", True, {"config": Windows7Config(clock_source="lapic-timer")}),
        ("kvm-3.19", True, {"linux": LinuxConfig()}),
        ("kvm-3.17", True, {"linux": LinuxConfig(clear_pending_intr=False)}),
        ("kvm-3.17", True, {"linux": LinuxConfig(clear_pending_intr=False),
                            "power_cycle_after_bsod": True}),
    ],
)
def test_the_counting_storm_counts_what_the_traced_storm_counts(
    name: str, apicv: bool, options: dict[str, object]
) -> None:
    for seed in (1, 2, 9, 11):
        runs = [
            run_storm(get_profile(name), apicv=apicv, reboots=25, seed=seed, tracing=tracing,
                      **options)  # type: ignore[arg-type]
            for tracing in (True, False)
        ]
        traced, counted = (
            (r.bsods, r.bsods_after_clean_boot, r.clean_boot_reboots, r.outcomes,
             r.first_failure_index, r.first_success_index, r.bugcheck)
            for r in runs
        )
        assert counted == traced, (name, apicv, options, seed)


def test_the_memo_forgets_rather_than_grows_and_still_counts_right(monkeypatch) -> None:
    from apiclab.engine import idle

    monkeypatch.setattr(idle, "MAX_STATES", 2)
    full, _ = windows_under_traffic(False, True, cli_at=250)
    fast, skipped = windows_under_traffic(True, True, cli_at=250)
    assert len(fast.quiet._memo) <= 2 and skipped > 0
    assert observable(fast) == observable(full)
