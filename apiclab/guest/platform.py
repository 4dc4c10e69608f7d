"""What a guest may touch: a CPU (its interrupt flag, IDT, APIC registers, TSC, MSRs) and a
platform it reaches by port I/O and MMIO, as an operating system does. Guests are written against
these protocols, never against the hypervisor's machine: a device is programmed through its
registers (`apiclab.platform.pc` says where they are), as the real guest's HAL programs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from apiclab.engine.core import Engine, Signal
from apiclab.engine.events import Event
from apiclab.engine.trace import Trace


class GuestLapic(Protocol):
    """The two facts of the local APIC a guest's code reads outside its registers: the x2APIC
    mode (which decides the ICR write sequence) and the bus clock (a timer's count)."""

    x2apic: bool
    bus_hz: int


class GuestTsc(Protocol):
    hz: int

    def ns_at(self, ticks: int) -> int: ...

    def read(self, now_ns: int) -> int: ...


class GuestCpu(Protocol):
    """The CPU a guest runs on: instructions (STI, CLI, RDTSC, RDMSR/WRMSR, APIC register
    access), the IDT it installs, and the signal raised after each delivered interrupt."""

    idt: Callable[[int], None]
    delivered: Signal
    wait_for_sipi: bool  # an application processor after INIT, until a start-up IPI (§10.4.7.3)

    @property
    def lapic(self) -> GuestLapic: ...

    def sti(self) -> None: ...

    def cli(self) -> None: ...

    def rdtsc(self) -> int: ...

    def apic_read(self, offset: int) -> int: ...

    def apic_write(self, offset: int, value: int) -> None: ...

    def write_msr(self, msr: int, value: int) -> None: ...

    def guest_rdmsr(self, msr: int) -> int: ...

    def guest_wrmsr(self, msr: int, value: int) -> None: ...

    def record(self, kind: type[Event], **fields: Any) -> None: ...


class GuestPlatform(Protocol):
    """One VM as its guest sees it: the CPUs, port I/O and MMIO, the virtual clock and TSC, and
    the trace the guest's observations go to."""

    engine: Engine
    trace: Trace

    @property
    def vcpu(self) -> GuestCpu: ...

    @property
    def vcpus(self) -> Sequence[GuestCpu]:
        """Every CPU, the boot CPU first (`vcpu` is `vcpus[0]`)."""
        ...

    @property
    def tsc(self) -> GuestTsc: ...

    def io_in(self, port: int) -> int: ...

    def io_out(self, port: int, value: int) -> None: ...

    def mmio_read(self, address: int) -> int: ...

    def mmio_write(self, address: int, value: int) -> None: ...

    def pulse_lint1(self) -> None:
        """The platform pulses LINT1, its NMI source (a test's hand on the machine, not an
        instruction of the guest)."""
        ...
