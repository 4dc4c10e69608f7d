"""KVM and Bochs say why they do not run a LINT1 pulse, in one line, without needing /dev/kvm or
Bochs: the refusal comes before anything is opened or started."""

from __future__ import annotations

import pytest

from apiclab.backends.base import Availability, BackendUnavailable
from apiclab.backends.bochs import BochsBackend
from apiclab.backends.kvm import KvmBackend
from apiclab.conform.case import Case, load_builtin
from apiclab.executors.backends import BackendExecutor
from apiclab.guest.program import Mode, Program, Sti

LINT1_CASES = [c for c in load_builtin() if c.program.pulses_lint1]


def test_the_suite_has_lint1_cases_citing_the_lvt_section() -> None:
    assert len(LINT1_CASES) >= 3
    assert {c.sdm for c in LINT1_CASES} == {"10.5.1"}


@pytest.mark.parametrize("case", LINT1_CASES, ids=lambda c: c.name)
def test_kvm_refuses_with_the_reason_its_nmi_bypasses_the_lvt(case: Case) -> None:
    backend = KvmBackend(path="/nonexistent/kvm")  # refused before /dev/kvm is opened
    with pytest.raises(BackendUnavailable, match=r"KVM_NMI ioctl .* past LVT LINT1") as caught:
        backend.run(case.program)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", LINT1_CASES, ids=lambda c: c.name)
def test_bochs_refuses_with_the_reason_it_has_no_pulse_to_send(case: Case) -> None:
    with pytest.raises(BackendUnavailable, match=r"Bochs 2\.7 has no LINT1 source") as caught:
        BochsBackend().run(case.program)
    assert "\n" not in str(caught.value)


def test_the_executors_can_run_gives_the_same_reasons() -> None:
    case = LINT1_CASES[0]
    kvm, bochs = KvmBackend(), BochsBackend()
    assert "KVM_NMI" in (kvm.refusal(case.program) or "")
    assert "no LINT1 source" in (bochs.refusal(case.program) or "")
    plain = Program((Sti(),), mode=Mode.XAPIC_PM32)
    assert kvm.refusal(plain) is None and bochs.refusal(plain) is None

    executor = BackendExecutor(kvm)
    executor._availability = Availability(True, "KVM here")  # as if /dev/kvm answered
    assert "KVM_NMI" in (executor.can_run(case) or "")
