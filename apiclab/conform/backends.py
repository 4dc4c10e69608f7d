"""The four executors of the suite, by name (`apiclab.executors.backends`), the variants that
record more evidence for a case that differs, and the `--backends` list.

The model and the real backends are executors of `apiclab.executors`; the suite's runner drives
them through the `Backend` protocol (`make_backend`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apiclab.backends.base import Backend
from apiclab.errors import UserError
from apiclab.executors.backends import (
    BACKEND_NAMES,
    OneCpuOnly,
    OneCpuOnlyBatch,
    make_backend,
)
from apiclab.executors.model import MODEL_TSC_HZ
from apiclab.executors.model import ModelExecutor as ModelBackend

__all__ = ["BACKEND_NAMES", "MODEL_TSC_HZ", "ModelBackend", "OneCpuOnly", "OneCpuOnlyBatch",
           "evidence_backend", "evidence_session", "make_backend", "parse_backend_list"]


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
        with KvmBackend(shared_capture=capture).reusing_vm() as backend:  # one VM for all
            yield backend
    finally:
        capture.__exit__(None, None, None)


def parse_backend_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--backends: empty list; expected some of " + ", ".join(BACKEND_NAMES))
    for n in names:
        if n not in BACKEND_NAMES:
            raise UserError(f"--backends: unknown backend {n!r}; expected {', '.join(BACKEND_NAMES)}")
    return list(dict.fromkeys(names))
