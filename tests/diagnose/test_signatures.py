"""Known-bug signatures name the catalogue's commit and the release the profiles record."""

from __future__ import annotations

import dataclasses

import pytest

from apiclab.arch.registers import Reg
from apiclab.arch.vectors import set_of
from apiclab.diagnose import signatures
from apiclab.diagnose.evidence import CpuEvidence, Evidence
from apiclab.diagnose.verdicts import judge
from apiclab.hypervisor import profiles


def _match(*cpus: CpuEvidence) -> list[signatures.Signature]:
    ev = Evidence("test", list(cpus))
    return signatures.match(judge(ev), ev)


CLOCK = {int(Reg.LVT_TIMER): 0x200D1}


def test_a_clock_held_off_by_a_higher_in_service_vector_matches_4114c27d450b() -> None:
    [sig] = _match(CpuEvidence(0, isr=set_of([0xE1]), irr=set_of([0xD1]), svr=0x1FF, lvt=CLOCK,
                               timer_initial=1000))
    assert sig.commit == "4114c27d450b"
    assert sig.title == profiles.RESET_RVI.title
    assert "0xd1" in sig.evidence[0] and "0xe1" in sig.evidence[0]


def test_the_release_comes_from_the_profile_data_not_from_the_diagnosis(
        monkeypatch: pytest.MonkeyPatch) -> None:
    switch = profiles.SWITCHES["restore_sets_rvi"]
    moved = dataclasses.replace(switch.introduced_by, kernel="v9.99")
    monkeypatch.setitem(profiles.SWITCHES, "restore_sets_rvi",
                        dataclasses.replace(switch, introduced_by=moved))
    [sig] = _match(CpuEvidence(0, isr=set_of([0xE1]), irr=set_of([0xD1]), svr=0x1FF,
                               handlers={0xE1: "nt!KiUnexpectedInterrupt177"}))
    assert sig.fixed_in == "v9.99"


def test_a_run_out_one_shot_timer_whose_vector_is_nowhere_matches_9cfec6d097c6() -> None:
    lost = CpuEvidence(0, svr=0x1FF, lvt={int(Reg.LVT_TIMER): 0xEC}, timer_initial=5000,
                       timer_current=0)
    [sig] = _match(lost)
    assert sig.commit == "9cfec6d097c6"
    assert sig.fixed_in == profiles.CLEAR_PIR_FIRST.kernel


def test_a_healthy_state_matches_nothing() -> None:
    assert _match(CpuEvidence(0, irr=set_of([0xD1]), svr=0x1FF, lvt=CLOCK, timer_initial=1)) == []


def test_a_handler_in_progress_over_a_non_clock_vector_is_no_bug() -> None:
    assert _match(CpuEvidence(0, isr=set_of([0x61]), irr=set_of([0x51]), svr=0x1FF)) == []
