"""Stateful property tests: random sequences of SDM operations keep the APIC's invariants."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from apiclab.arch.lapic import LocalApic
from apiclab.arch.registers import Reg
from apiclab.arch.vectors import highest, priority_class
from apiclab.arch.vmx import VirtualApic

vectors = st.integers(min_value=16, max_value=255)


class LocalApicMachine(RuleBasedStateMachine):
    """§10.8: acceptance, dispatch, EOI and TPR in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.apic = LocalApic()
        self.apic.write(Reg.SVR, 0x1FF, now=0)
        self.in_service: list[int] = []  # our own record of what was acknowledged, in order

    @rule(vector=vectors)
    def accept(self, vector: int) -> None:
        self.apic.accept(vector)

    @rule()
    def acknowledge(self) -> None:
        expected = self.apic.highest_priority_int()
        ppr_before = self.apic.ppr()
        vector = self.apic.acknowledge()
        if expected < 0:
            assert vector == 0xFF  # the spurious vector
            return
        assert vector == expected
        assert priority_class(vector) > priority_class(ppr_before)
        self.in_service.append(vector)

    @rule()
    def eoi(self) -> None:
        result = self.apic.receive_eoi()
        if self.in_service:
            top = max(self.in_service)
            assert result.vector == top
            self.in_service.remove(top)
        else:
            assert result.vector == -1

    @rule(tpr=st.integers(0, 255))
    def write_tpr(self, tpr: int) -> None:
        self.apic.write(Reg.TPR, tpr, now=0)

    @invariant()
    def ppr_is_never_below_tpr_and_covers_the_highest_isr(self) -> None:
        ppr = self.apic.ppr()
        assert ppr >= self.apic.tpr
        assert priority_class(ppr) >= priority_class(max(highest(self.apic.isr), 0))

    @invariant()
    def isr_is_exactly_what_was_acknowledged_and_not_eoied(self) -> None:
        expected = 0
        for v in self.in_service:
            expected |= 1 << v
        assert self.apic.isr == expected


class VirtualApicMachine(RuleBasedStateMachine):
    """§29.1–29.2, also with a hypervisor that writes a stale RVI (the bug this project studies:
    KVM up to 3.18 left RVI naming a vector whose VIRR bit was clear). SVI tracks the highest
    VISR bit; the delivered vector is RVI (§29.2.2), with its VIRR bit set unless RVI was stale."""

    def __init__(self) -> None:
        super().__init__()
        self.v = VirtualApic(LocalApic())
        self.stale = False  # the hypervisor wrote an RVI other than the highest VIRR bit

    @rule(vector=vectors)
    def hypervisor_writes_stale_rvi(self, vector: int) -> None:
        self.v.rvi = vector
        self.stale = self.stale or vector != max(highest(self.v.page.irr), 0)
        self.v.vm_entry()

    @rule(vector=vectors)
    def self_ipi(self, vector: int) -> None:
        self.v.self_ipi_virtualization(vector)

    @rule(vector=vectors)
    def post_and_notify(self, vector: int) -> None:
        self.v.post(vector)
        self.v.posted_interrupt_processing()

    @rule()
    def deliver(self) -> None:
        if self.v.can_deliver(interrupts_enabled=True):
            rvi = self.v.rvi
            if not self.stale:
                assert self.v.page.irr >> rvi & 1, "a consistent RVI is always in VIRR"
            assert self.v.deliver() == rvi
            assert self.v.page.isr >> rvi & 1 and self.v.svi == rvi  # in service, stale or not
            self.stale = self.v.rvi != max(highest(self.v.page.irr), 0)

    @rule()
    def eoi(self) -> None:
        self.v.eoi_virtualization()

    @rule(tpr=st.integers(0, 255))
    def tpr(self, tpr: int) -> None:
        self.v.tpr_virtualization(tpr)

    @invariant()
    def svi_is_the_highest_visr(self) -> None:
        assert self.v.svi == max(highest(self.v.page.isr), 0)

    @invariant()
    def rvi_is_the_highest_virr_unless_written_stale(self) -> None:
        if not self.stale:
            assert self.v.rvi == max(highest(self.v.page.irr), 0)

    @invariant()
    def vppr_is_never_below_vtpr(self) -> None:
        assert self.v.vppr >= self.v.page.tpr


TestLocalApic = LocalApicMachine.TestCase
TestLocalApic.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestVirtualApic = VirtualApicMachine.TestCase
TestVirtualApic.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
