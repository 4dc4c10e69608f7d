"""The CPU core a guest runs on: RFLAGS.IF, the handler table (the IDT, one handler per vector),
NMI blocking, and the delivery of interrupts at instruction boundaries.

Which interrupt the CPU takes at a boundary is not the core's to decide: under KVM it is KVM's
event injection or the CPU's own virtual-interrupt delivery (`apiclab.hypervisor.kvm.KvmVcpu`
implements `_next_vector` and the register snapshot). The core runs each handler as an interrupt
gate does: IF is cleared on entry and the handler's IRET restores it (SDM vol. 3A §6.12.1.2), and
a handler is never re-entered by the delivery loop — the IRET re-checks for the next interrupt.
STI's one-instruction interrupt shadow (vol. 2B, STI) matters only before a HLT; the generic
guest's STI;HLT step (`apiclab.guest.stepper`) models it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from apiclab.engine import events as ev
from apiclab.engine.core import Engine, Signal
from apiclab.engine.trace import Trace
from apiclab.platform.tsc import Tsc

# Handlers run in no model time, so an interrupt that comes back as soon as its handler returns (a
# level-triggered input still asserted when the handler EOIs, SDM §10.8.5 / 82093AA §3.2.4) would
# be taken forever at one instant. Far more deliveries than any program makes in one go: a storm.
MAX_DELIVERIES_AT_ONCE: Final = 10_000


class InterruptStorm(Exception):
    """The CPU took `MAX_DELIVERIES_AT_ONCE` interrupts back to back at one instant: the run can
    make no progress (its handlers run in no time), so it stops here."""

    def __init__(self, vector: int, now: int) -> None:
        super().__init__(
            f"interrupt storm: vector {vector:#04x} delivered {MAX_DELIVERIES_AT_ONCE:,} times "
            f"back to back at {now} ns (an input still asserted when its handler EOIs?)")
        self.vector = vector


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed by Python classes
class Cpu:
    """The interrupt-facing core of one logical processor. Subclasses say where interrupts come
    from (`_next_vector`), how they are reported (`delivery_via`) and what the trace's register
    snapshot holds (`registers`)."""

    def __init__(self, engine: Engine, trace: Trace, tsc: Tsc) -> None:
        self.engine = engine
        self.trace = trace
        self.tsc = tsc
        self.wait_for_sipi = False  # after an INIT (§10.4.7.3), until a start-up IPI
        self.if_flag = False
        self.idt: Callable[[int], None] = lambda vector: None
        self.delivered = Signal()  # fires after every delivered interrupt (wakes HLT and waits)
        self.deliveries = 0  # interrupts delivered so far (each ran guest code)
        self._delivering = False
        self.nmi_running = False  # an NMI handler is running (NMIs blocked until its IRET)
        self.nmi_pending = False  # one NMI held while blocked (§6.7.1)

    # --- what a subclass provides ---------------------------------------------------------------


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.engine, self.trace, self.tsc, self.wait_for_sipi, self.if_flag, self.idt,
                self.delivered, self.deliveries, self._delivering, self.nmi_running,
                self.nmi_pending)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.engine, self.trace, self.tsc, self.wait_for_sipi, self.if_flag, self.idt,
         self.delivered, self.deliveries, self._delivering, self.nmi_running,
         self.nmi_pending) = saved

    def registers(self) -> dict[str, Any]:
        """The interrupt state recorded with each event (none for the bare core)."""
        return {}

    def _next_vector(self) -> tuple[int, bool]:
        """The vector the CPU takes now (-1 if none) and whether its IRR bit was set."""
        return -1, False

    @property
    def delivery_via(self) -> str:
        """How a delivered interrupt reached the CPU, as the `deliver` event says it."""
        return "inject"

    def record(self, kind: type[ev.Event], **data: Any) -> None:
        """Record `kind` with `data` and the register snapshot, unless the trace is not recording
        (the snapshot is most of a step's cost). The steps a counting storm runs at every reboot
        ask `trace.recording` before the call: in compiled code (`apiclab.native`) the call's
        keyword arguments are a dict built even when nothing is recorded."""
        trace = self.trace
        if trace.recording:
            # `Trace.record`'s two lines, here: through its interpreted call the keyword
            # arguments would be copied twice more (an explore search records ~70,000 events)
            trace.events.append(kind(time=self.engine.now, **data, **self.registers()))

    # --- the instructions a guest performs -----------------------------------------------------

    def sti(self) -> None:
        # Recorded so a timeline can show when the guest opened the window for delivery.
        if self.trace.recording:
            self.trace.record(self.engine.now, ev.Sti)
        self.if_flag = True
        self._try_deliver()

    def cli(self) -> None:
        if self.trace.recording:
            self.trace.record(self.engine.now, ev.Cli)
        self.if_flag = False

    def rdtsc(self) -> int:
        return self.tsc.read(self.engine.now)

    def reset_cpu(self) -> None:
        """The CPU side of a system reset: RFLAGS.IF = 0, out of any handler."""
        self.if_flag = False

    # --- NMI and delivery at instruction boundaries --------------------------------------------

    def nmi(self, source: str) -> None:
        """An NMI (§10.6.1 delivery mode NMI; vol. 3A §6.7.1): taken whatever IF, TPR and PPR,
        through vector 2 whatever the ICR's vector field, and not through IRR/ISR. While its
        handler runs (until IRET) further NMIs are blocked, and one of them is held pending."""
        if self.wait_for_sipi:
            # a CPU waiting for SIPI runs nothing; the model drops the NMI (as KVM does)
            self.record(ev.Accept, vector=2, source=source, path="wait-for-sipi")
            return
        self.record(ev.Accept, vector=2, source=source, path="nmi")
        if self.nmi_running:
            self.nmi_pending = True
            return
        while True:
            self.nmi_running = True
            saved_if, self.if_flag = self.if_flag, False  # an interrupt gate clears IF
            self.idt(2)
            self.if_flag, self.nmi_running = saved_if, False
            self.delivered.fire()
            if not self.nmi_pending:
                break
            self.nmi_pending = False
        self._try_deliver()

    def _try_deliver(self) -> None:
        if self._delivering:
            return  # the handler runs with IF=0; its IRET re-checks below
        self._delivering = True
        taken = 0
        try:
            while True:
                vector, irr_was_set = self._next_vector()
                if vector < 0:
                    return
                taken += 1
                if taken > MAX_DELIVERIES_AT_ONCE:
                    raise InterruptStorm(vector, self.engine.now)
                if self.trace.recording:
                    self.record(ev.Deliver, vector=vector, via=self.delivery_via,
                                irr_was_set=irr_was_set)
                # An interrupt gate clears IF; the handler's IRET restores it.
                self.deliveries += 1
                self.if_flag = False
                self.idt(vector)
                self.if_flag = True
                self.delivered.fire()
        finally:
            self._delivering = False
