"""Verdicts follow the SDM's rules: PPR from TPR and the highest in-service vector, the highest
pending vector first, IF and the interrupt shadow, a software-disabled APIC."""

from __future__ import annotations

from apiclab.arch.registers import Reg
from apiclab.arch.vectors import set_of
from apiclab.diagnose.evidence import CpuEvidence
from apiclab.diagnose.verdicts import (
    AFTER_HIGHER,
    APIC_DISABLED,
    DELIVERABLE,
    IF_CLEAR,
    IN_SERVICE,
    SHADOW,
    TPR,
    judge_cpu,
)


def cpu(**kw: object) -> CpuEvidence:
    base: dict[str, object] = {"cpu": 0, "svr": 0x1FF, "if_flag": True, "shadow": False}
    base.update(kw)
    return CpuEvidence(**base)  # type: ignore[arg-type]


def test_an_in_service_vector_of_a_higher_class_holds_the_clock_off() -> None:
    v = judge_cpu(cpu(isr=set_of([0xE1]), irr=set_of([0xD1])))
    assert v.ppr == 0xE0
    [p] = v.pending
    assert (p.deliverable, p.reason, p.blocking_vector) == (False, IN_SERVICE, 0xE1)


def test_an_in_service_vector_of_the_same_class_holds_it_off_too() -> None:
    [p] = judge_cpu(cpu(isr=set_of([0xD0]), irr=set_of([0xD1]))).pending
    assert (p.reason, p.blocking_vector) == (IN_SERVICE, 0xD0)


def test_a_lower_in_service_vector_does_not_hold_a_higher_class() -> None:
    [p] = judge_cpu(cpu(isr=set_of([0x41]), irr=set_of([0xD1]))).pending
    assert (p.deliverable, p.reason) == (True, DELIVERABLE)


def test_tpr_masks_its_class_and_below() -> None:
    v = judge_cpu(cpu(tpr=0xD0, irr=set_of([0xD1])))
    assert v.ppr == 0xD0
    assert v.pending[0].reason == TPR and v.pending[0].blocking_vector is None


def test_the_highest_pending_vector_goes_first_and_the_rest_wait_behind_it() -> None:
    v = judge_cpu(cpu(irr=set_of([0x51, 0xD1])))
    assert [(p.vector, p.reason) for p in v.pending] == [(0xD1, DELIVERABLE), (0x51, AFTER_HIGHER)]
    assert not v.held_off


def test_if_clear_and_the_interrupt_shadow_hold_an_offered_vector() -> None:
    assert judge_cpu(cpu(irr=set_of([0xD1]), if_flag=False)).pending[0].reason == IF_CLEAR
    assert judge_cpu(cpu(irr=set_of([0xD1]), shadow=True)).pending[0].reason == SHADOW


def test_a_software_disabled_apic_holds_everything() -> None:
    [p] = judge_cpu(cpu(svr=0xFF, irr=set_of([0xD1]))).pending
    assert (p.deliverable, p.reason) == (False, APIC_DISABLED)


def test_a_printed_ppr_that_breaks_the_rule_is_reported() -> None:
    v = judge_cpu(cpu(isr=set_of([0xE1]), ppr_read=0x00))
    assert any("PPR 0x00" in n and "0xe0" in n for n in v.notes)


def test_the_lapic_timer_vector_is_what_the_guest_waits_for() -> None:
    v = judge_cpu(cpu(lvt={int(Reg.LVT_TIMER): 0x200D1}, timer_initial=1000))
    assert [(w.vector, w.source) for w in v.waiting_for] == [(0xD1, "lapic-timer")]


def test_a_handler_named_after_the_hpet_clock_is_recognised() -> None:
    v = judge_cpu(cpu(handlers={0xD1: "hal!HalpHpetClockInterruptStub"}))
    assert [(w.vector, w.source) for w in v.waiting_for] == [(0xD1, "hpet")]


def test_an_unexpected_interrupt_stub_will_not_eoi() -> None:
    v = judge_cpu(cpu(isr=set_of([0xE1]), handlers={0xE1: "nt!KiUnexpectedInterrupt177"}))
    assert v.in_service[0].eoi_expected == "no"


def test_if_clear_holds_every_vector_above_ppr_not_only_the_highest() -> None:
    v = judge_cpu(cpu(irr=set_of([0x51, 0xD1]), if_flag=False))
    assert [(p.vector, p.reason) for p in v.pending] == [(0xD1, IF_CLEAR), (0x51, IF_CLEAR)]


def test_an_unmasked_ioapic_clock_pin_is_what_the_guest_waits_for() -> None:
    from apiclab.diagnose.qmp import clock_pins

    text = ("  pin 2  0x00000000000000d1 dest=0 vec=209 active-hi edge        fixed  physical\n"
            "  pin 8  0x0000000000010038 dest=0 vec=56  active-hi edge masked fixed  physical\n")
    sources = clock_pins(text)
    assert list(sources) == [0xD1]
    v = judge_cpu(cpu(clock_sources=sources))
    assert [(w.vector, w.source) for w in v.waiting_for] == [(0xD1, "ioapic")]
