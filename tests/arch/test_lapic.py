"""Local APIC rules, each worked from the SDM (vol. 3A, 325384-059US, chapter 10)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiclab.arch.lapic import (
    ESR_RECEIVE_ILLEGAL_VECTOR,
    LVT_MASKED,
    Accept,
    EoiBroadcast,
    GeneralProtection,
    LocalApic,
    SendIpi,
    timer_divisor,
)
from apiclab.arch.registers import Reg, msr_of
from apiclab.arch.vectors import priority_class


def enabled() -> LocalApic:
    apic = LocalApic()
    apic.write(Reg.SVR, 0x1FF, now=0)
    return apic


@pytest.mark.parametrize(
    ("tpr", "isr_vector", "ppr"),
    [
        (0x20, 0x31, 0x30),  # ISRV class above TPR class: PPR = ISRV & 0xF0
        (0x50, 0x31, 0x50),  # TPR class above: PPR = TPR
        (0x3A, 0x31, 0x3A),  # equal classes: TPR wins, low bits kept (§10.8.3.1)
        (0x00, None, 0x00),
    ],
)
def test_ppr_follows_tpr_and_highest_isr(tpr, isr_vector, ppr):
    apic = enabled()
    apic.write(Reg.TPR, tpr, now=0)
    if isr_vector is not None:
        apic.isr |= 1 << isr_vector
    assert apic.read(Reg.PPR, now=0) == ppr


def test_highest_irr_is_dispatched_only_above_ppr_class():
    apic = enabled()
    apic.accept(0x45)
    apic.write(Reg.TPR, 0x40, now=0)
    assert apic.highest_priority_int() == -1  # same class as PPR: held
    apic.write(Reg.TPR, 0x3F, now=0)
    assert apic.highest_priority_int() == 0x45


def test_acknowledge_moves_vector_from_irr_to_isr():
    apic = enabled()
    apic.accept(0x51)
    apic.accept(0x61)
    assert apic.acknowledge() == 0x61
    assert apic.irr == 1 << 0x51 and apic.isr == 1 << 0x61
    assert apic.read(Reg.PPR, now=0) == 0x60


def test_acknowledge_with_nothing_deliverable_returns_the_spurious_vector():
    apic = LocalApic()
    apic.write(Reg.SVR, 0x1EF, now=0)
    assert apic.acknowledge() == 0xEF
    assert apic.isr == 0


def test_eoi_clears_the_highest_isr_bit_only():
    apic = enabled()
    apic.isr = (1 << 0x31) | (1 << 0x62)
    apic.write(Reg.EOI, 0, now=0)
    assert apic.isr == 1 << 0x31


def test_eoi_with_empty_isr_does_nothing():
    apic = enabled()
    assert apic.write(Reg.EOI, 0, now=0) == ()
    assert apic.isr == 0 and apic.receive_eoi().vector == -1


def test_level_triggered_eoi_is_broadcast_unless_suppressed():
    apic = enabled()
    apic.accept(0x71, level=True)
    apic.acknowledge()
    assert apic.write(Reg.EOI, 0, now=0) == (EoiBroadcast(0x71),)
    # Bit 12 (EOI-broadcast suppression) is reserved where the version register's bit 24 is
    # clear, as on this APIC (SDM §10.4.8, §10.9): the write leaves it clear and EOIs broadcast.
    apic.write(Reg.SVR, 0x11FF, now=0)
    assert apic.read(Reg.SVR, now=0) == 0x1FF
    apic.accept(0x71, level=True)
    apic.acknowledge()
    assert apic.write(Reg.EOI, 0, now=0) == (EoiBroadcast(0x71),)
    apic.svr |= 0x1000  # an APIC that has it (e.g. a restored image): no broadcast
    apic.accept(0x71, level=True)
    apic.acknowledge()
    assert apic.write(Reg.EOI, 0, now=0) == ()


def test_accept_records_trigger_mode_in_tmr():
    apic = enabled()
    apic.accept(0x40, level=True)
    assert apic.tmr >> 0x40 & 1
    apic.irr = 0
    apic.accept(0x40, level=False)
    assert not apic.tmr >> 0x40 & 1


def test_interrupt_arriving_while_irr_set_is_merged():
    apic = enabled()
    assert apic.accept(0x50) is Accept.ACCEPTED
    assert apic.accept(0x50) is Accept.MERGED
    apic.acknowledge()
    assert apic.irr == 0  # one request was lost


def test_illegal_vector_sets_esr_after_latching_write():
    apic = enabled()
    assert apic.accept(0x0F) is Accept.ILLEGAL
    assert apic.irr == 0
    assert apic.read(Reg.ESR, now=0) == 0  # not visible until software writes ESR (§10.5.3)
    apic.write(Reg.ESR, 0, now=0)
    assert apic.read(Reg.ESR, now=0) & ESR_RECEIVE_ILLEGAL_VECTOR
    apic.write(Reg.ESR, 0, now=0)
    assert apic.read(Reg.ESR, now=0) == 0


def test_software_disable_masks_every_lvt_and_keeps_them_masked():
    apic = enabled()
    apic.write(Reg.LVT_TIMER, 0x20, now=0)
    assert not apic.read(Reg.LVT_TIMER, now=0) & LVT_MASKED
    apic.write(Reg.SVR, 0xFF, now=0)
    assert all(apic.read(r, now=0) & LVT_MASKED for r in apic.lvt)
    apic.write(Reg.LVT_TIMER, 0x20, now=0)  # cannot be unmasked while disabled
    assert apic.read(Reg.LVT_TIMER, now=0) & LVT_MASKED
    apic.write(Reg.SVR, 0x1FF, now=0)  # re-enabling does not unmask
    assert apic.read(Reg.LVT_TIMER, now=0) & LVT_MASKED


def test_software_disabled_apic_holds_pending_interrupts():
    apic = enabled()
    apic.accept(0x80)
    apic.write(Reg.SVR, 0xFF, now=0)
    assert apic.highest_priority_int() == -1
    assert apic.accept(0x90) is Accept.DISABLED
    apic.write(Reg.SVR, 0x1FF, now=0)
    assert apic.highest_priority_int() == 0x80


def test_self_ipi_through_icr_shorthand_targets_self():
    apic = enabled()
    effects = apic.write(Reg.ICR_LOW, (1 << 18) | 0x55, now=0)
    assert len(effects) == 1 and isinstance(effects[0], SendIpi)
    assert effects[0].to_self and effects[0].icr.vector == 0x55


def test_icr_to_other_destination_is_not_to_self():
    apic = enabled()
    apic.write(Reg.ICR_HIGH, 3 << 24, now=0)
    (effect,) = apic.write(Reg.ICR_LOW, 0x55, now=0)
    assert isinstance(effect, SendIpi) and not effect.to_self and effect.icr.destination == 3


def test_x2apic_self_ipi_msr_and_64bit_icr():
    apic = enabled()
    apic.x2apic = True
    (effect,) = apic.write_msr(0x83F, 0x66, now=0)
    assert isinstance(effect, SendIpi) and effect.to_self and effect.icr.vector == 0x66
    (effect,) = apic.write_msr(0x830, (7 << 32) | 0x44, now=0)
    assert isinstance(effect, SendIpi) and effect.icr.destination == 7
    assert apic.read_msr(0x830, now=0) == (7 << 32) | 0x44


def test_x2apic_read_only_and_write_only_msrs_fault():
    apic = enabled()
    apic.x2apic = True
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.PPR), 0, now=0)
    with pytest.raises(GeneralProtection):
        apic.read_msr(msr_of(Reg.EOI), now=0)
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.EOI), 1, now=0)


def test_x2apic_msrs_fault_outside_x2apic_mode():
    # §10.12.1.2: MSRs 0x800-0x8FF are the APIC's only in x2APIC mode
    apic = enabled()
    with pytest.raises(GeneralProtection):
        apic.read_msr(msr_of(Reg.TPR), now=0)
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.TPR), 0x20, now=0)
    assert apic.tpr == 0
    apic.x2apic = True
    apic.write_msr(msr_of(Reg.TPR), 0x20, now=0)
    assert apic.read_msr(msr_of(Reg.TPR), now=0) == 0x20


def test_x2apic_wrmsr_with_reserved_bits_faults_and_changes_nothing():
    apic = enabled()
    apic.x2apic = True
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.TPR), 1 << 32 | 0x20, now=0)
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.ESR), 1, now=0)
    assert apic.tpr == 0


def test_x2apic_icr_write_by_offset_takes_all_64_bits():
    # §10.12.9: in x2APIC mode the ICR is one register, the destination in bits 63:32
    apic = enabled()
    apic.x2apic = True
    (effect,) = apic.write(Reg.ICR_LOW, (9 << 32) | 0x45, now=0)
    assert isinstance(effect, SendIpi) and effect.icr.destination == 9 and apic.icr >> 32 == 9


@pytest.mark.parametrize(
    ("config", "divisor"),
    [(0b0000, 2), (0b0001, 4), (0b0010, 8), (0b0011, 16), (0b1000, 32), (0b1001, 64),
     (0b1010, 128), (0b1011, 1)],
)
def test_timer_divide_configuration(config, divisor):
    assert timer_divisor(config) == divisor


def test_timer_current_count_one_shot_and_periodic():
    apic = enabled()
    apic.write(Reg.TIMER_DIVIDE, 0b0000, now=0)  # /2 at 1 GHz: 2 ns per count
    apic.write(Reg.LVT_TIMER, 0x30, now=0)
    apic.write(Reg.TIMER_INITIAL, 1000, now=0)
    assert apic.read(Reg.TIMER_CURRENT, now=500) == 750
    assert apic.read(Reg.TIMER_CURRENT, now=5000) == 0  # one-shot stops at 0
    apic.write(Reg.LVT_TIMER, (1 << 17) | 0x30, now=0)  # periodic (mode change disarms)
    apic.write(Reg.TIMER_INITIAL, 1000, now=0)
    assert apic.read(Reg.TIMER_CURRENT, now=2500) == 750  # reloaded after 2000 ns


def test_initial_count_zero_stops_the_timer():
    apic = enabled()
    apic.write(Reg.TIMER_INITIAL, 100, now=0)
    apic.write(Reg.TIMER_INITIAL, 0, now=10)
    assert apic.read(Reg.TIMER_CURRENT, now=20) == 0


def test_reset_values():
    apic = enabled()
    apic.write(Reg.TPR, 0x40, now=0)
    apic.accept(0x50)
    apic.reset()
    assert apic.read(Reg.SVR, now=0) == 0xFF
    assert apic.read(Reg.DFR, now=0) == 0xFFFFFFFF
    assert apic.read(Reg.TPR, now=0) == 0 and apic.irr == 0 and apic.isr == 0
    assert all(apic.read(r, now=0) == LVT_MASKED for r in apic.lvt)


def test_init_keeps_the_apic_id():
    apic = LocalApic(apic_id=5)
    apic.write(Reg.SVR, 0x1FF, now=0)
    apic.init()
    assert apic.read(Reg.ID, now=0) == 5 << 24 and apic.read(Reg.SVR, now=0) == 0xFF


def test_xapic_id_write_is_taken_and_read_back():
    """§10.4.6: the model takes an xAPIC ID write (bits 31:24; the rest of the register is
    reserved and reads 0), and INIT keeps the written ID (§10.4.7.3)."""
    apic = LocalApic(apic_id=1)
    apic.write(Reg.ID, 0x05ABCDEF, now=0)
    assert apic.read(Reg.ID, now=0) == 0x05000000
    assert apic.apic_id == 5 and apic.initial_id == 1
    apic.init()
    assert apic.read(Reg.ID, now=0) == 0x05000000


def test_reset_and_x2apic_bring_back_the_hardware_id():
    """RESET loads the ID the hardware assigns (§10.4.7.1); entering x2APIC mode the APIC
    answers to its x2APIC ID, not to an ID written in xAPIC mode (§10.12.5.1)."""
    apic = LocalApic(apic_id=1)
    apic.write(Reg.ID, 0, now=0)
    apic.reset()
    assert apic.read(Reg.ID, now=0) == 0x01000000
    apic.write(Reg.ID, 0x07000000, now=0)
    apic.set_x2apic(True)
    assert apic.read_msr(msr_of(Reg.ID), now=0) == 1
    apic.set_x2apic(True)  # staying in x2APIC changes nothing
    assert apic.apic_id == 1


def test_x2apic_id_stays_read_only():
    """§10.12.1.2 Table 10-6: the x2APIC ID register is read only; WRMSR raises #GP and the
    ID is unchanged; an xAPIC-page write of the offset in x2APIC mode does nothing either."""
    apic = LocalApic(apic_id=3)
    apic.set_x2apic(True)
    with pytest.raises(GeneralProtection):
        apic.write_msr(msr_of(Reg.ID), 0, now=0)
    apic.write(Reg.ID, 0, now=0)
    assert apic.read_msr(msr_of(Reg.ID), now=0) == 3


vectors = st.integers(min_value=16, max_value=255)


@given(tpr=st.integers(0, 255), isr=st.lists(vectors, max_size=5))
def test_ppr_is_never_below_tpr(tpr, isr):
    apic = enabled()
    apic.write(Reg.TPR, tpr, now=0)
    for v in isr:
        apic.isr |= 1 << v
    assert apic.ppr() >= tpr


@given(pending=st.lists(vectors, min_size=1, max_size=8), tpr=st.integers(0, 255))
def test_after_acknowledge_ppr_class_is_at_least_the_delivered_class(pending, tpr):
    apic = enabled()
    apic.write(Reg.TPR, tpr, now=0)
    for v in pending:
        apic.accept(v)
    vector = apic.highest_priority_int()
    if vector >= 0:
        assert apic.acknowledge() == vector
        assert priority_class(apic.ppr()) >= priority_class(vector)


def test_illegal_self_ipi_sets_both_esr_bits_and_raises_one_error_interrupt():
    from apiclab.arch.lapic import LocalInterrupt

    apic = enabled()
    apic.write(Reg.LVT_ERROR, 0x70, now=0)
    effects = apic.write(Reg.ICR_LOW, (1 << 18) | 0x06, now=0)
    assert effects == (LocalInterrupt(0x70),)
    apic.write(Reg.ESR, 0, now=0)
    assert apic.read(Reg.ESR, now=0) == 0x60


def test_masked_error_entry_raises_nothing():
    apic = enabled()
    assert apic.write(Reg.ICR_LOW, (1 << 18) | 0x06, now=0) == ()


def test_fixed_level_ipi_is_issued_as_edge():
    apic = enabled()
    (effect,) = apic.write(Reg.ICR_LOW, (1 << 18) | (1 << 15) | (1 << 14) | 0x42, now=0)
    assert isinstance(effect, SendIpi) and not effect.icr.level_triggered


def test_error_interrupt_fires_once_until_an_esr_write_rearms_it():
    # §10.5.3: "This write also rearms the APIC error interrupt triggering mechanism."
    apic = enabled()
    apic.write(Reg.LVT_ERROR, 0x70, now=0)
    first = apic.write(Reg.ICR_LOW, 0x44005, now=0)  # self-IPI of an illegal vector
    assert [type(e).__name__ for e in first] == ["LocalInterrupt"]
    assert apic.write(Reg.ICR_LOW, 0x44006, now=0) == ()  # disarmed: the ESR bits only accumulate
    apic.write(Reg.ESR, 0, now=0)
    assert apic.read(Reg.ESR, now=0) == 0x60
    assert [type(e).__name__ for e in apic.write(Reg.ICR_LOW, 0x44005, now=0)] == ["LocalInterrupt"]


def test_an_illegal_lvt_error_vector_is_received_illegally_once_not_forever():
    # LVT error vector 0: the error interrupt itself is an illegal vector (an error), but the
    # mechanism is disarmed until the next ESR write, so there is no second interrupt.
    apic = enabled()
    apic.write(Reg.LVT_ERROR, 0, now=0)
    (interrupt,) = apic.write(Reg.ICR_LOW, 0x44006, now=0)
    assert apic.accept(interrupt.vector) is Accept.ILLEGAL
    assert apic.error_interrupt() == ()
    apic.write(Reg.ESR, 0, now=0)
    assert apic.read(Reg.ESR, now=0) == 0x60  # send and receive illegal vector
