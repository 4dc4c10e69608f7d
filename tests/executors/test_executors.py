"""The executor protocol on the model and on a backend behind it, and the shared `Case`."""

from __future__ import annotations

from fakes import Silent

from apiclab.backends.base import Availability, RunResult
from apiclab.conform.case import load_builtin
from apiclab.conform.match import match_expectation
from apiclab.engine.events import End
from apiclab.engine.trace import Trace
from apiclab.executors.backends import BackendExecutor, OneCpuOnly, executor
from apiclab.executors.case import Case
from apiclab.executors.model import ModelExecutor
from apiclab.executors.protocol import ProgramExecutor
from apiclab.guest.program import Program
from apiclab.scenarios.kvm_cases import cases as kvm_cases


class Unavailable(Silent):
    def availability(self) -> Availability:
        return Availability(False, "not installed here")


def test_the_model_runs_every_suite_case_to_its_expectation() -> None:
    model: ProgramExecutor = executor("model")
    assert model.name == "model"
    for case in load_builtin():
        assert model.can_run(case) is None
        result = model.run(case)
        assert isinstance(result, RunResult)
        assert match_expectation(case, result.trace).agrees, case.name


def test_the_kvm_reproduce_cases_are_cases_whose_expectation_the_model_meets() -> None:
    model = ModelExecutor()
    found = kvm_cases(wait_ms=5, tsc_hz=1_000_000_000)
    assert [c.name for c in found] == ["clean-reset", "stale-isr", "pending-irr"]
    for case in found:
        assert isinstance(case, Case) and case.image is not None and case.expect
        assert match_expectation(case, model.run(case).trace).agrees, case.name


def test_a_backend_executor_says_why_a_case_cannot_run() -> None:
    two_cpus = Case("two", "", "", Program((), cpus=2))
    one_cpu = Case("one", "", "", Program(()))
    assert BackendExecutor(Unavailable("qemu")).can_run(one_cpu) == "not installed here"
    silent = BackendExecutor(Silent("bochs"))
    assert silent.name == "bochs" and silent.can_run(one_cpu) is None
    trace: Trace = silent.run(one_cpu).trace
    assert [type(e) for e in trace] == [End]
    reason = BackendExecutor(OneCpuOnly(Silent("bochs"))).can_run(two_cpus)
    assert reason is not None and "one CPU" in reason
    assert BackendExecutor(OneCpuOnly(Silent("qemu"), several_alone=True)).can_run(
        two_cpus) is None


def test_the_suite_runner_starts_a_case_from_its_image() -> None:
    from apiclab.conform.runner import judge, judge_batch
    from apiclab.scenarios.kvm_cases import stale_isr_image

    class Batching(ModelExecutor):
        def __init__(self) -> None:
            self.batches: list[int] = []

        def run_batch(self, programs: list[Program], *, timeout_s: float) -> list[RunResult]:
            self.batches.append(len(programs))
            return [self.run(p, timeout_s=timeout_s) for p in programs]

    stale = next(c for c in kvm_cases(wait_ms=5, tsc_hz=1_000_000_000) if c.name == "stale-isr")
    assert judge(stale, ModelExecutor()).outcome == "agrees"  # the bugcheck needs the image
    without = Case(stale.name, stale.sdm, stale.description, stale.program, stale.expect)
    assert judge(without, ModelExecutor()).outcome == "differs"
    backend = Batching()
    runs = judge_batch([without, stale, without], backend)
    assert [r.outcome for r in runs] == ["differs", "agrees", "differs"]
    assert backend.batches == [2]  # the case with an image ran alone
    assert stale.image is not None and stale_isr_image().isr == stale.image.isr
