"""The CPU core: delivery at instruction boundaries with IF, one handler at a time, NMI blocking."""

from apiclab.engine import events as ev
from apiclab.engine.core import Engine
from apiclab.engine.trace import Trace
from apiclab.platform.cpu import Cpu
from apiclab.platform.tsc import Tsc


class QueueCpu(Cpu):
    """A core whose interrupt source is a plain queue of vectors."""

    def __init__(self, vectors: list[int]) -> None:
        super().__init__(Engine(), Trace(), Tsc(10**9))
        self.queue = vectors

    def _next_vector(self) -> tuple[int, bool]:
        if not self.if_flag or not self.queue:
            return -1, False
        return self.queue.pop(0), True


def test_nothing_is_delivered_while_if_is_clear_and_everything_after_sti() -> None:
    cpu = QueueCpu([0x41, 0x51])
    ran: list[tuple[int, bool]] = []
    cpu.idt = lambda vector: ran.append((vector, cpu.if_flag))
    cpu._try_deliver()
    assert ran == []
    cpu.sti()
    # each handler runs with IF = 0 (interrupt gate), and IF is back to 1 after its IRET
    assert ran == [(0x41, False), (0x51, False)] and cpu.if_flag and cpu.deliveries == 2
    kinds = [e.kind for e in cpu.trace.events]
    assert kinds == ["sti", "deliver", "deliver"]


def test_a_handler_that_enables_interrupts_is_not_reentered() -> None:
    cpu = QueueCpu([0x41, 0x51])
    depth: list[int] = []
    active = [0]

    def handler(vector: int) -> None:
        active[0] += 1
        depth.append(active[0])
        cpu.sti()  # the next vector waits for this handler's IRET
        active[0] -= 1

    cpu.idt = handler
    cpu.sti()
    assert depth == [1, 1]


def test_an_nmi_during_the_nmi_handler_is_held_and_runs_after_it() -> None:
    cpu = QueueCpu([])
    order: list[str] = []

    def handler(vector: int) -> None:
        order.append(f"start {vector}")
        if len(order) == 1:
            cpu.nmi("again")  # blocked: held pending until this handler's IRET
            cpu.nmi("dropped")  # only one is held
        order.append(f"end {vector}")

    cpu.idt = handler
    cpu.nmi("first")
    assert order == ["start 2", "end 2", "start 2", "end 2"]
    assert not cpu.if_flag  # IF as it was before the NMI


def test_a_cpu_waiting_for_sipi_takes_no_nmi() -> None:
    cpu = QueueCpu([])
    ran: list[int] = []
    cpu.idt = ran.append
    cpu.wait_for_sipi = True
    cpu.nmi("ipi")
    last = cpu.trace.events[-1]
    assert ran == [] and isinstance(last, ev.Accept) and last.path == "wait-for-sipi"
