"""The runner: agreement, difference and the two ways a backend can fail to run a case."""

from __future__ import annotations

from fakes import Silent

from apiclab.arch.lapic_state import LapicState
from apiclab.backends.base import Availability, BackendUnavailable, RunResult
from apiclab.conform.backends import ModelBackend
from apiclab.conform.case import load_builtin
from apiclab.conform.report import matrix_text, summary_text, to_json
from apiclab.conform.runner import run_suite
from apiclab.guest.program import Program

CASES = [c for c in load_builtin() if c.name in ("ppr-from-tpr", "reset-svr")]


class Broken(Silent):
    def __init__(self) -> None:
        super().__init__("broken")

    def run(self, program: Program, *, lapic_image: object = None,
            timeout_s: float = 5.0) -> RunResult:
        raise BackendUnavailable("this program needs a feature the backend lacks")


class Gone:
    """A backend that is not installed here: it only says why."""

    name = "gone"

    def availability(self) -> Availability:
        return Availability(False, "not installed here")

    def run(self, program: Program, *, lapic_image: LapicState | None = None,
            timeout_s: float = 5.0) -> RunResult:
        raise BackendUnavailable("not installed here")


def test_outcomes_agrees_differs_and_not_run_with_reasons() -> None:
    result = run_suite(CASES, {"model": ModelBackend(), "silent": Silent(),
                               "broken": Broken(),
                               "gone": Gone()})
    doc = to_json(result)
    assert doc["backends"]["gone"] == {"available": False, "reason": "not installed here"}
    for case in doc["cases"]:
        assert case["results"] == {"model": "agrees", "silent": "differs", "broken": "not-run",
                                   "gone": "not-run"}
        assert case["not_run"]["broken"] == "this program needs a feature the backend lacks"
        assert [d["backend"] for d in case["differences"]] == ["silent"]
        assert case["differences"][0]["observed"] == {"kind": "end"}
    text = matrix_text(result)
    assert "gone   not run: not installed here" in text
    summary = summary_text(result)
    assert "silent: 0 agree, 2 differ, 0 not run" in summary
    assert "gone: 0 agree, 0 differ, 2 not run (not installed here)" in summary


def test_the_model_agrees_with_every_built_in_case() -> None:
    # The expectations are worked from the SDM; a model that leaves one is wrong (or the case is).
    cases = load_builtin()
    assert len(cases) >= 110
    result = run_suite(cases, {"model": ModelBackend()})
    differing = [r.case.name for r in result.cases if r.outcome("model") != "agrees"]
    assert differing == []
