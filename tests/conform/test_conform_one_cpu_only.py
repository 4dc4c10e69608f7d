"""A backend without `several_alone` refuses programs for several CPUs with the reason; a batch
takes only the one-CPU programs (the others run alone); QEMU and Bochs run several CPUs alone."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.conform.backends import OneCpuOnly, OneCpuOnlyBatch
from apiclab.engine.trace import Trace
from apiclab.executors.backends import make_backend
from apiclab.guest.program import Mode, Program, Read

ONE = Program((Read(0x20),), mode=Mode.XAPIC_PM32)
TWO = Program((Read(0x20, cpu=1),), mode=Mode.XAPIC_PM32, cpus=2)


class Fake:
    name = "fake"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def availability(self) -> Availability:
        return Availability(True, "fake 1.0")

    def run(self, program: Program, *, lapic_image: LapicState | None = None,
            timeout_s: float = 5.0) -> RunResult:
        return RunResult(trace=Trace())

    def run_batch(self, programs: Sequence[Program], *, timeout_s: float
                  ) -> list[RunResult | None]:
        self.batches.append(len(programs))
        return [RunResult(trace=Trace()) for _ in programs]


def test_a_multi_cpu_program_is_refused_with_the_reason() -> None:
    backend = OneCpuOnly(Fake())
    assert backend.run(ONE).trace is not None
    with pytest.raises(BackendUnavailable, match=r"2 CPUs: fake runs the agent on one CPU only"):
        backend.run(TWO)


@pytest.mark.parametrize("name", ["qemu", "bochs"])
def test_qemu_and_bochs_run_programs_for_several_cpus_alone(name: str) -> None:
    backend = make_backend(name)
    assert isinstance(backend, OneCpuOnlyBatch) and backend.several_alone


def test_a_batch_runs_only_the_one_cpu_programs() -> None:
    fake = Fake()
    results = OneCpuOnlyBatch(fake).run_batch([TWO, ONE, TWO, ONE], timeout_s=1.0)
    assert fake.batches == [2]
    assert [r is not None for r in results] == [False, True, False, True]


def test_a_backend_that_batches_several_cpus_gets_every_program() -> None:
    class SeveralFake(Fake):
        batches_several_cpus = True

    fake = SeveralFake()
    results = OneCpuOnlyBatch(fake, several_alone=True).run_batch([TWO, ONE, TWO], timeout_s=1.0)
    assert fake.batches == [3]
    assert all(r is not None for r in results)
