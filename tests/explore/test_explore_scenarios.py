"""The scenario families: their choices reach the states the catalogue needs, deterministically."""

from collections.abc import Hashable
from types import ModuleType

import pytest

from apiclab.engine.choices import Choices
from apiclab.engine.trace import Event, Trace
from apiclab.explore.choices import RecordingChoices, checkpoint, deviations, normalize
from apiclab.explore.scenarios import reboot, snapshot
from apiclab.hypervisor.profiles import PROFILES

# reboot: one arrival, vector 0xd1 (index 7), landing after the shutdown's CLI (slot 1)
ONE_STALE_CLOCK = [1, reboot.VECTORS.index(0xD1), 1]
# snapshot: TSC-deadline timer due 1 ms after the snapshot, no pending vectors, restored 1 ms later
EXPIRED_DEADLINE = [1, 0, 0, 1]


def run(
    family: ModuleType, profile: str, apicv: bool, seq: list[int]
) -> tuple[RecordingChoices, Trace]:
    choices = RecordingChoices(replay=seq)
    return choices, family.run(PROFILES[profile], apicv, choices)


def stale(trace: Trace) -> list[Event]:
    return [e for e in trace if e.kind == "deliver" and not e.irr_was_set]


def test_same_choices_give_the_same_trace() -> None:
    a = run(reboot, "kvm-3.17", True, [2, 8, 1, 3, 0, 1])[1]
    b = run(reboot, "kvm-3.17", True, [2, 8, 1, 3, 0, 1])[1]
    assert a.digest() == b.digest()


def test_a_vector_pending_at_reset_is_delivered_stale_only_before_4114c27d() -> None:
    _, before = run(reboot, "kvm-3.17", True, ONE_STALE_CLOCK)
    _, after = run(reboot, "kvm-3.19", True, ONE_STALE_CLOCK)
    assert [e.vector for e in stale(before)] == [0xD1]
    assert any(e.kind == "bugcheck" for e in before)
    assert stale(after) == [] and any(e.kind == "clock-ok" for e in after)


def test_a_vector_handled_before_the_cli_leaves_nothing_stale() -> None:
    _, trace = run(reboot, "kvm-3.17", True, [1, reboot.VECTORS.index(0xE1), 0])
    assert stale(trace) == [] and any(e.kind == "clock-ok" for e in trace)


def test_reboot_draws_are_recorded_with_their_arities_and_a_checkpoint() -> None:
    choices, _ = run(reboot, "kvm-3.17", True, [2, 8, 1, 3, 0])
    assert choices.drawn == [2, 8, 1, 3, 0, 0, 0, 0]
    assert choices.arities == [4, 9, 4, 9, 4, 10, 2, 2]
    assert [p.index for p in choices.checkpoints] == [6]


def post_reset_states(profile: str, sequences: list[list[int]]) -> set[Hashable]:
    return {run(reboot, profile, True, seq)[0].checkpoints[0].key for seq in sequences}


def test_only_pir_leftovers_tell_post_reset_states_apart_after_4114c27d() -> None:
    pending_or_late: list[list[int]] = [[], ONE_STALE_CLOCK, [2, 8, 1, 7, 1], [1, 3, 3]]
    assert len(post_reset_states("kvm-3.17", pending_or_late)) == 3  # RVI 0, 0xd1, 0xe1
    assert len(post_reset_states("kvm-3.19", pending_or_late)) == 1
    posted_during_reset = [[1, 0, 2], [1, 3, 2]]
    assert len(post_reset_states("kvm-3.19", [[], *posted_during_reset])) == 3
    assert len(post_reset_states("kvm-4.11", [[], *posted_during_reset])) == 1  # 967235d32032


def test_a_vector_posted_during_the_reset_reaches_the_new_guest_until_967235d32032() -> None:
    for profile, leaks in (("kvm-3.19", True), ("kvm-4.11", False)):
        _, trace = run(reboot, profile, True, [1, reboot.VECTORS.index(0xE1), 2])
        reset = next(i for i, e in enumerate(trace) if e.kind == "reset")
        late = [e.vector for e in trace.events[reset:] if e.kind == "deliver"]
        assert (0xE1 in late) is leaks


def timer_deliveries(trace: Trace) -> list[Event]:
    return [e for e in trace if e.kind == "deliver" and e.vector == snapshot.TIMER_VECTOR]


@pytest.mark.parametrize(
    ("profile", "apicv", "outcome"),
    [
        ("kvm-4.11", False, "late"),  # before 8e6ed96cdd50: re-armed for a whole initial count
        ("kvm-6.3", False, "at-once"),  # fired at once by the restore
        ("kvm-6.3", True, "lost"),  # fired, posted, then wiped by 967235d32032's PIR clear
        ("kvm-6.7", True, "at-once"),  # 9cfec6d097c6 clears PIR first
    ],
)
def test_a_one_shot_put_back_by_qemu_with_tmcct_zero(profile: str, apicv: bool, outcome: str) -> None:
    _, trace = run(snapshot, profile, apicv, [])  # one-shot, due 1 ms after the snapshot
    restore = next(e for e in trace if e.kind == "set-lapic")
    delivered = timer_deliveries(trace)
    if outcome == "lost":
        assert delivered == []
    elif outcome == "at-once":
        assert delivered[0].time == restore.time
    else:
        assert delivered[0].time > restore.time


@pytest.mark.parametrize("profile", ["kvm-3.19", "kvm-4.11", "kvm-6.3", "kvm-6.7"])
@pytest.mark.parametrize("apicv", [True, False])
def test_a_tsc_deadline_restored_by_kvm_set_msrs_after_the_apic_is_never_lost(
    profile: str, apicv: bool
) -> None:
    _, passed = run(snapshot, profile, apicv, [1, 0, 0, 0, 1])  # due 1 ms, restored 1 ms later
    restore = next(e for e in passed if e.kind == "set-lapic")
    assert [e.time for e in timer_deliveries(passed)] == [restore.time]
    _, ahead = run(snapshot, profile, apicv, [1, 2, 0, 0, 1])  # due 3 ms, restored 1 ms later
    restore = next(e for e in ahead if e.kind == "set-lapic")
    assert [e.time - restore.time for e in timer_deliveries(ahead)] == [2_000_000]


def test_a_vector_in_service_at_the_reset_is_retired_by_the_reset_image() -> None:
    for profile in ("kvm-3.17", "kvm-3.19"):
        # no arrivals; Windows reboots from inside the IPI's handler
        _, trace = run(reboot, profile, True, [0, len(reboot.VECTORS)])
        reboot_event = next(e for e in trace if e.kind == "reboot")
        restore = next(e for e in trace if e.kind == "set-lapic")
        assert reboot_event.isr == [0xE1] and reboot_event.svi == 0xE1
        assert restore.isr == [] and restore.svi == 0
        assert any(e.kind == "clock-ok" for e in trace)


def test_a_handler_interrupted_by_the_snapshot_finishes_after_the_restore() -> None:
    # one-shot, due 1 ms; one vector, 0xe1 (fourth), in service at the snapshot
    _, trace = run(snapshot, "kvm-6.7", True, [0, 0, 0, 1, 3, 2])
    snap = next(e for e in trace if e.kind == "snapshot")
    restore = next(e for e in trace if e.kind == "set-lapic")
    assert snap.isr == [0xE1] and restore.svi == 0xE1
    assert trace.events[-1].isr == [] and timer_deliveries(trace)


def test_choice_helpers() -> None:
    assert normalize([1, 0, 2, 0, 0]) == [1, 0, 2]
    assert deviations([1, 0, 2, 0]) == 2
    plain = Choices(replay=[])
    checkpoint(plain, "ignored")  # plain Choices: a no-op
