"""The four executors of the suite, by name, each reporting whether it can run here and why not.

The model is wrapped as a backend here so the runner treats all four alike; the real backends live
in `apiclab.backends.{kvm,qemu,bochs}`. A backend whose code or program is missing is reported as
unavailable with the reason, never as a failure of the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, Backend, BackendUnavailable, RunResult
from apiclab.errors import UserError
from apiclab.guest.program import LOG_PORT_AP, Program

BACKEND_NAMES = ("model", "kvm", "qemu", "bochs")
_CHOICES = ", ".join(BACKEND_NAMES)

# The model's TSC rate for guest programs: the TSC budgets of the cases assume a few GHz, as on
# the machines the real backends run on.
MODEL_TSC_HZ = 3_000_000_000


class ModelBackend:
    """The executable SDM (`apiclab.hypervisor.program_run.run_program`) behind the Backend protocol."""

    name = "model"

    def _run_program(self) -> Callable[..., Any]:
        from apiclab.hypervisor.program_run import (
            run_program,  # imported when first run: start-up stays fast
        )

        run: Callable[..., Any] = run_program
        return run

    def availability(self) -> Availability:
        try:
            self._run_program()
        except BackendUnavailable as e:
            return Availability(False, str(e))
        try:
            version = metadata.version("apiclab")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return Availability(True, f"apiclab model {version} (SDM 325384-059US)")

    def run(
        self,
        program: Program,
        *,
        lapic_image: LapicState | None = None,
        timeout_s: float = 5.0,
    ) -> RunResult:
        run_program = self._run_program()
        # Bounded like a real backend: a step budget and the same wall-clock time-out.
        trace = run_program(program, lapic_image=lapic_image, tsc_hz=MODEL_TSC_HZ,
                            timeout_s=timeout_s)
        stopped = trace.of_kind("model-stopped")
        evidence = {"stopped": stopped[0].data.get("reason")} if stopped else {}
        return RunResult(trace=trace, timed_out=bool(stopped), evidence=evidence)


class OneCpuOnly:
    """A real backend for one-CPU programs: QEMU's and Bochs' machines have one CPU here, so the
    agent runs on one CPU only and a program for several CPUs is not run there, with that reason
    (KVM's VM has one vCPU per CPU of the program)."""

    def __init__(self, inner: Backend, *, several_alone: bool = False) -> None:
        """`several_alone`: the backend runs programs for several CPUs, but one at a time, never
        in a batch (QEMU with -smp)."""
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
                f"{program.cpus} CPUs: Bochs runs them (cpu: count=N) but has no device on the "
                f"agent's per-CPU log ports {LOG_PORT_AP + 1:#x}+ (port_e9_hack is 0xe9 only), "
                "so the other CPUs' events cannot be seen")
        return self.inner.run(program, lapic_image=lapic_image, timeout_s=timeout_s)


class OneCpuOnlyBatch(OneCpuOnly):
    """`OneCpuOnly` for a backend that runs many programs in one boot (QEMU, Bochs)."""

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float
                  ) -> list[RunResult | None]:
        """The one-CPU programs in one boot of the inner backend (if it batches); None for the
        others, which the runner then runs alone, and `run` refuses with the reason."""
        inner = self.inner.run_batch  # type: ignore[attr-defined]
        picked = [i for i, p in enumerate(programs) if p.cpus == 1]
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
        backend = ModelBackend()
    elif name == "kvm":
        from apiclab.backends.kvm import KvmBackend

        backend = KvmBackend()
    elif name == "qemu":
        from apiclab.backends.qemu import QemuBackend

        backend = QemuBackend()
    elif name == "bochs":
        from apiclab.backends.bochs import BochsBackend

        backend = BochsBackend()
    else:
        raise UserError(f"--backends: unknown backend {name!r}; expected {_CHOICES}")
    if name not in ("model", "kvm"):  # KVM runs one vCPU per CPU of the program
        several = name == "qemu"  # -smp N, each program alone (its batches are one-CPU)
        one_cpu: Backend = (OneCpuOnlyBatch(backend, several_alone=several)
                            if hasattr(backend, "run_batch")
                            else OneCpuOnly(backend, several_alone=several))
        return one_cpu
    return backend


def evidence_backend(name: str) -> Backend | None:
    """A variant of a backend that records more evidence per run, for re-running a case that
    differs: real KVM with its tracepoints (kvm_apic, kvm_eoi, kvm_inj_virq, ...) captured."""
    if name != "kvm":
        return None
    from apiclab.backends.kvm import KvmBackend

    backend: Backend = KvmBackend(trace_events=True)
    return backend


@contextmanager
def evidence_session(name: str) -> Iterator[Backend | None]:
    """`evidence_backend(name)` for many re-runs one after another: KVM's runs share one tracefs
    instance (cleared before each run) instead of making and removing one per run. Where the
    instance cannot be made, the per-run variant, whose runs then report why."""
    if name != "kvm":
        yield None
        return
    from apiclab.backends.kvm import KvmBackend
    from apiclab.backends.kvm.tracefs import TraceCapture

    capture = TraceCapture()
    try:
        capture.__enter__()
    except Exception:  # no tracefs here (not root, not mounted): each run says why
        yield evidence_backend(name)
        return
    try:
        backend: Backend = KvmBackend(shared_capture=capture)
        yield backend
    finally:
        capture.__exit__(None, None, None)


def parse_backend_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--backends: empty list; expected some of " + ", ".join(BACKEND_NAMES))
    for n in names:
        if n not in BACKEND_NAMES:
            raise UserError(f"--backends: unknown backend {n!r}; expected {_CHOICES}")
    return list(dict.fromkeys(names))
