"""The executors of guest programs by name: the model, KVM, QEMU and Bochs, each saying whether
it can run a case here and why not.

`executor(name)` gives a `ProgramExecutor` (`apiclab.executors.protocol`); `make_backend(name)`
gives the same executor as the suite's runner drives it (the `Backend` protocol, with batches
where the emulator offers them). The real ones are imported only when asked for (start-up stays
fast), by plain imports, so the import graph shows every dependency (no importlib). A backend
whose code or program is missing is reported as unavailable with the reason, never as a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, Backend, BackendUnavailable, RunResult
from apiclab.errors import UserError
from apiclab.executors.case import Case
from apiclab.executors.model import ModelExecutor
from apiclab.executors.protocol import DEFAULT_TIMEOUT_S, ProgramExecutor
from apiclab.guest.program import LOG_PORT_AP, Program

BACKEND_NAMES = ("model", "kvm", "qemu", "bochs")
_CHOICES = ", ".join(BACKEND_NAMES)


class OneCpuOnly:
    """A real backend whose batches are for one-CPU programs (QEMU, Bochs: a batch boots a
    machine of one CPU). With `several_alone` a program for several CPUs runs alone, on a
    machine with as many; without it, it is not run, with that reason (KVM's VM has one vCPU per
    CPU of the program)."""

    def __init__(self, inner: Backend, *, several_alone: bool = False) -> None:
        """`several_alone`: the backend runs programs for several CPUs, but one at a time, never
        in a batch (QEMU with -smp, Bochs with cpu: count=N)."""
        self.inner = inner
        self.name = inner.name
        self.several_alone = several_alone

    def availability(self) -> Availability:
        return self.inner.availability()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)  # anything else the backend offers, unchanged

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult:
        if program.cpus > 1 and not self.several_alone:
            raise BackendUnavailable(
                f"{program.cpus} CPUs: {self.name} runs the agent on one CPU only here (the "
                f"other CPUs log to ports {LOG_PORT_AP + 1:#x}+, which it cannot show)")
        return self.inner.run(program, lapic_image=lapic_image, timeout_s=timeout_s)


class OneCpuOnlyBatch(OneCpuOnly):
    """`OneCpuOnly` for a backend that runs many programs in one boot (QEMU, Bochs)."""

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float
                  ) -> list[RunResult | None]:
        """The one-CPU programs in one boot of the inner backend (if it batches), and the
        others too where it batches them (`batches_several_cpus`: Bochs); None for the rest,
        which the runner then runs alone (or `run` refuses with the reason)."""
        inner = self.inner.run_batch  # type: ignore[attr-defined]
        several = getattr(self.inner, "batches_several_cpus", False)
        picked = [i for i, p in enumerate(programs) if p.cpus == 1 or several]
        results: list[RunResult | None] = [None] * len(programs)
        if picked:
            done = inner([programs[i] for i in picked], timeout_s=timeout_s)
            for i, result in zip(picked, done, strict=True):
                results[i] = result
        return results


def make_backend(name: str) -> Backend:
    """The named backend. The real ones are imported only when asked for (start-up stays fast),
    by plain imports, so the import graph shows every dependency (no importlib)."""
    backend: Backend
    if name == "model":
        backend = ModelExecutor()
    elif name == "kvm":
        from apiclab.backends.kvm import KvmBackend

        backend = KvmBackend(batch_tracepoints=True)  # a differing case's evidence, no re-run
    elif name == "qemu":
        from apiclab.backends.qemu import QemuBackend

        backend = QemuBackend()
    elif name == "bochs":
        from apiclab.backends.bochs import BochsBackend

        backend = BochsBackend()
    else:
        raise UserError(f"--backends: unknown backend {name!r}; expected {_CHOICES}")
    if name not in ("model", "kvm"):  # KVM runs one vCPU per CPU of the program
        # QEMU -smp N, Bochs cpu: count=N; each program alone (their batches are one-CPU)
        several = name in ("qemu", "bochs")
        one_cpu: Backend = (OneCpuOnlyBatch(backend, several_alone=several)
                            if hasattr(backend, "run_batch")
                            else OneCpuOnly(backend, several_alone=several))
        return one_cpu
    return backend


class BackendExecutor:
    """A backend behind the executor protocol: `can_run` says why a case cannot run here (the
    backend is unavailable, or the program is for more CPUs than its machine has)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._availability: Availability | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    def can_run(self, case: Case) -> str | None:
        if self._availability is None:
            self._availability = self.backend.availability()
        if not self._availability.available:
            return self._availability.detail
        if case.program.cpus > 1 and isinstance(self.backend, OneCpuOnly) \
                and not self.backend.several_alone:
            return (f"{case.program.cpus} CPUs: the agent ROM runs on one CPU only here (this "
                    "backend's machine has one CPU; the model, KVM, QEMU and Bochs run several)")
        refusal = getattr(self.backend, "refusal", None)  # e.g. a LINT1 pulse on KVM or Bochs
        reason: str | None = refusal(case.program) if refusal is not None else None
        return reason

    def run(self, case: Case, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
        return self.backend.run(case.program, lapic_image=case.image, timeout_s=timeout_s)


def executor(name: str) -> ProgramExecutor:
    """The named executor of guest programs (model, kvm, qemu or bochs)."""
    if name == "model":
        return ModelExecutor()
    return BackendExecutor(make_backend(name))
