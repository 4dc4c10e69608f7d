"""VMX virtual-interrupt delivery (SDM vol. 3C, 325384-059US, chapter 29)."""

from hypothesis import given
from hypothesis import strategies as st

from apiclab.arch.lapic import LocalApic
from apiclab.arch.vectors import priority_class
from apiclab.arch.vmx import VirtualApic


def vapic() -> VirtualApic:
    return VirtualApic(LocalApic())


def test_stale_rvi_is_delivered_with_virr_clear():
    v = vapic()
    v.rvi = 0xE1  # left over: VIRR is empty
    v.vm_entry()
    assert v.can_deliver(interrupts_enabled=True)
    assert v.deliver() == 0xE1
    assert v.page.isr == 1 << 0xE1 and v.svi == 0xE1 and v.vppr == 0xE0
    assert v.rvi == 0 and v.page.irr == 0


def test_delivery_waits_for_interrupts_enabled():
    v = vapic()
    v.self_ipi_virtualization(0x40)
    assert v.recognized and not v.can_deliver(interrupts_enabled=False)


def test_delivery_sets_rvi_to_the_next_highest_virr():
    v = vapic()
    v.page.irr = (1 << 0x41) | (1 << 0x72)
    v.rvi = 0x72
    v.vm_entry()
    assert v.deliver() == 0x72
    assert v.rvi == 0x41


def test_eoi_virtualization_retires_svi_not_the_highest_visr():
    v = vapic()
    v.page.isr = (1 << 0x31) | (1 << 0xE1)
    v.svi = 0x31  # SVI out of step with VISR
    result = v.eoi_virtualization()
    assert result.vector == 0x31
    assert v.page.isr == 1 << 0xE1 and v.svi == 0xE1


def test_ppr_virtualization_reads_svi_not_visr():
    v = vapic()
    v.page.isr = 1 << 0xE1
    v.svi = 0
    v.page.tpr = 0x20
    v.ppr_virtualization()
    assert v.vppr == 0x20
    v.svi = 0xE1
    v.ppr_virtualization()
    assert v.vppr == 0xE0


def test_evaluation_happens_only_at_the_listed_points():
    v = vapic()
    v.vm_entry()
    v.rvi = 0x80  # KVM writes the VMCS field; nothing evaluates yet
    assert not v.can_deliver(interrupts_enabled=True)
    v.vm_entry()
    assert v.can_deliver(interrupts_enabled=True)


def test_tpr_virtualization_blocks_and_unblocks():
    v = vapic()
    v.page.irr = 1 << 0x55
    v.rvi = 0x55
    v.tpr_virtualization(0x60)
    assert v.vppr == 0x60 and not v.recognized
    v.tpr_virtualization(0x40)
    assert v.recognized


def test_eoi_virtualization_reevaluates_pending():
    v = vapic()
    v.page.irr = 1 << 0x51
    v.rvi = 0x51
    v.page.isr = 1 << 0x61
    v.svi = 0x61
    v.vm_entry()
    assert not v.recognized
    v.eoi_virtualization()
    assert v.recognized


def test_eoi_exit_bitmap_asks_for_an_exit_instead_of_evaluating():
    v = vapic()
    v.page.isr = 1 << 0x61
    v.svi = 0x61
    v.eoi_exit_bitmap = 1 << 0x61
    v.page.irr = 1 << 0x51
    v.rvi = 0x51
    result = v.eoi_virtualization()
    assert result.eoi_exit and not v.recognized


def test_self_ipi_virtualization_raises_rvi_to_the_max():
    v = vapic()
    v.rvi = 0x90
    v.self_ipi_virtualization(0x40)
    assert v.rvi == 0x90 and v.page.irr >> 0x40 & 1


def test_posted_interrupt_processing_moves_pir_into_virr():
    v = vapic()
    assert v.post(0x70) is True
    assert v.post(0x50) is False  # ON already set: no second notification
    v.posted_interrupt_processing()
    assert not v.on and v.pir == 0
    assert v.page.irr == (1 << 0x70) | (1 << 0x50) and v.rvi == 0x70
    assert v.recognized


def test_posting_keeps_a_higher_stale_rvi():
    v = vapic()
    v.rvi = 0xE1
    v.post(0xD1)
    v.posted_interrupt_processing()
    assert v.rvi == 0xE1


@given(
    rvi=st.integers(16, 255),
    tpr=st.integers(0, 255),
    isr=st.lists(st.integers(16, 255), max_size=4),
)
def test_after_delivery_vppr_is_at_least_the_delivered_class(rvi, tpr, isr):
    v = vapic()
    for vec in isr:
        v.page.isr |= 1 << vec
    v.svi = max(isr, default=0)
    v.page.tpr = tpr
    v.rvi = rvi
    v.vm_entry()
    if v.can_deliver(True):
        vector = v.deliver()
        assert priority_class(v.vppr) >= priority_class(vector)
        # §29.1.1: VPPR is VTPR or SVI & 0xF0, whichever class is higher; §29.2.1 recognizes RVI
        # only above it. So what is delivered outranks both TPR and the highest in service.
        assert priority_class(vector) > max(priority_class(tpr), priority_class(max(isr, default=0)))
