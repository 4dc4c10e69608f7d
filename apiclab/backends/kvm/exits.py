"""`VcpuExit`: why KVM_RUN returned, as small frozen dataclasses (api.rst §5, kvm_run.exit_reason).

The run loop is a `match` over these, never offset arithmetic on the kvm_run page.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IoOut:
    """KVM_EXIT_IO, direction out: the guest wrote `data` (size * count bytes) to `port`."""

    port: int
    size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class IoIn:
    """KVM_EXIT_IO, direction in: the host may fill the data area before the next KVM_RUN."""

    port: int
    size: int
    count: int


@dataclass(frozen=True, slots=True)
class MmioWrite:
    address: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MmioRead:
    address: int
    length: int


@dataclass(frozen=True, slots=True)
class Hlt:
    """KVM_EXIT_HLT (only without an in-kernel irqchip; with one, HLT blocks in the kernel)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """KVM_EXIT_SHUTDOWN: a triple fault."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """KVM_RUN returned EINTR / KVM_EXIT_INTR: a signal (our time-out) or immediate_exit."""


@dataclass(frozen=True, slots=True)
class FailEntry:
    hardware_entry_failure_reason: int


@dataclass(frozen=True, slots=True)
class InternalError:
    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SystemEvent:
    type: int


@dataclass(frozen=True, slots=True)
class Other:
    """Any exit reason this backend does not act on."""

    exit_reason: int


VcpuExit = (IoOut | IoIn | MmioWrite | MmioRead | Hlt | Shutdown | Interrupted | FailEntry
            | InternalError | SystemEvent | Other)
