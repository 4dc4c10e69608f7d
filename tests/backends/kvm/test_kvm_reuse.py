"""One VM for many programs (`apiclab.backends.kvm.reuse`): each program sees what it would see
on a VM of its own, whatever the programs before it left behind."""

from __future__ import annotations

import os
from typing import Any

import pytest

from apiclab.backends.kvm import KvmBackend
from apiclab.conform.case import Case, load_builtin
from apiclab.conform.match import visible

CASES = {c.name: c for c in load_builtin()}
# programs that change what the reset must put back: redirection entries, x2APIC mode and TPR,
# a software-disabled APIC with vectors pending, pc-testdev lines, a relocated APIC page
DIRTY = ["ioapic-redirection-reads-back", "apic-base-xapic-to-x2apic-keeps-tpr",
         "svr-disable-holds-pending", "ioapic-line-level-sets-tmr-and-remote-irr",
         "apic-base-relocation", "tsc-deadline-msr-reads-back", "apic-base-x2apic-to-disabled"]
# programs that read the reset state, deterministic on the real KVM
READERS = [name for name in CASES if name.startswith("reset-")] + [
    "ioapic-redirection-masked-at-reset", "apic-base-reads-xapic", "ioapic-version-register"]
PIT = "ioapic-level-sets-remote-irr"  # drives the 8254 (port 0x43): the VM's last program


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def events(backend: KvmBackend, case: Case) -> list[dict[str, Any]]:
    return visible(backend.run(case.program, timeout_s=20).trace)


@pytest.mark.usefixtures("kvm")
def test_readers_of_the_reset_state_see_a_new_vm_after_programs_that_changed_it() -> None:
    fresh = KvmBackend()
    fresh.prepare_threads()
    expected = {name: events(fresh, CASES[name]) for name in READERS}
    with KvmBackend().reusing_vm() as backend:
        assert backend.reused is not None
        seen = []
        for dirty in DIRTY:
            events(backend, CASES[dirty])
            for name in READERS:
                seen.append((dirty, name, events(backend, CASES[name])))
        assert backend.reused.made == 1  # none of them ended the VM
    for dirty, name, got in seen:
        assert got == expected[name], f"{name} after {dirty}"


@pytest.mark.usefixtures("kvm")
def test_a_program_driving_the_pit_is_the_vms_last() -> None:
    reader = CASES["reset-tpr-ppr-zero"]
    with KvmBackend().reusing_vm() as backend:
        assert backend.reused is not None
        events(backend, reader)
        events(backend, reader)
        assert backend.reused.made == 1
        events(backend, CASES[PIT])
        assert backend.reused.made == 1
        events(backend, reader)
        assert backend.reused.made == 2


@pytest.mark.usefixtures("kvm")
def test_a_batch_runs_one_cpu_programs_on_one_vm_and_leaves_the_others() -> None:
    two_cpus = next(c for c in CASES.values() if c.program.cpus > 1)
    programs = [CASES["reset-svr"].program, two_cpus.program, CASES["reset-esr-zero"].program]
    backend = KvmBackend()
    backend.prepare_threads()
    before = fds()
    results = backend.run_batch(programs, timeout_s=60)
    assert fds() == before  # the VM is closed with the batch
    assert results[1] is None  # several CPUs: run alone by the caller
    for case, result in ((CASES["reset-svr"], results[0]), (CASES["reset-esr-zero"], results[2])):
        assert result is not None
        assert visible(result.trace) == events(backend, case)


@pytest.mark.usefixtures("kvm")
def test_a_run_that_does_not_end_leaves_the_batch_time_to_the_runs_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest halted with nothing to wake it ends at BATCH_RUN_LIMIT_S (then runs alone), and
    the programs after it still run in the batch, though the batch's time is far longer."""
    from apiclab.backends.kvm import backend as kvm_backend
    from apiclab.guest.program import Cli, End, Hlt, Program

    monkeypatch.setattr(kvm_backend, "BATCH_RUN_LIMIT_S", 0.5)
    halted = Program((Cli(), Hlt(), End()))
    programs = [halted, CASES["reset-svr"].program]
    backend = KvmBackend()
    backend.prepare_threads()
    results = backend.run_batch(programs, timeout_s=120)
    assert results[0] is None  # reached its limit: the caller runs it alone
    assert results[1] is not None
    assert visible(results[1].trace) == events(backend, CASES["reset-svr"])
