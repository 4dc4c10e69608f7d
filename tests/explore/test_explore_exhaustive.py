"""`apiclab explore --exhaustive`: the reboot family as a state graph, searched to the end.

Profiles are named through the catalogue entry of the seed's fix (4114c27d450b), so the tests do
not depend on what the profile before and after the fix are called.
"""

import json
from typing import Any

import pytest

from apiclab.cli.main import main
from apiclab.engine.events import Event
from apiclab.explore.catalogue import CATALOGUE
from apiclab.explore.families import FAMILIES
from apiclab.explore.graph import explore_graph, replay
from apiclab.explore.properties import BUILTIN
from apiclab.explore.scenarios.reboot_steps import RebootWorld
from apiclab.explore.search import Executor
from apiclab.hypervisor.profiles import RESET_RVI, Profile, get_profile

Capture = pytest.CaptureFixture[str]
SEED = next(e for e in CATALOGUE if e.commit == RESET_RVI.commit)
CLOCK = BUILTIN["clock-tick"]


def test_shortest_counterexample_before_the_fix() -> None:
    result = explore_graph(RebootWorld, CLOCK, get_profile(SEED.buggy), True, family="reboot")
    ce = result.counterexample
    assert ce is not None
    # one non-default choice: the clock vector pending after the CLI; nothing shorter exists
    assert result.depth == 1
    assert ce.choices == [1, 7, 1]
    assert "0xd1 arrives after the shutdown's CLI" in ce.steps[2]
    assert len(ce.path) == 7 and sum(1 for a in ce.path if a) == 1
    assert any(e.kind == "bugcheck" for e in ce.events)


def test_counterexample_is_a_run_of_the_family() -> None:
    """The path, replayed as a choice sequence of `reboot.run`, breaks the property there too."""
    result = explore_graph(RebootWorld, CLOCK, get_profile(SEED.buggy), True, family="reboot")
    assert result.counterexample is not None
    executor = Executor(FAMILIES["reboot"], CLOCK, get_profile(SEED.buggy), True)
    _, run = executor.replay(result.counterexample.choices)
    assert run.violation is not None
    assert [e.kind for e in run.events if e.kind != "choice"] == \
        [e.kind for e in result.counterexample.events if e.kind != "choice"]


def test_the_same_path_replays_to_the_same_state() -> None:
    profile = get_profile(SEED.buggy)
    path = (1, 3, 9, 2, 0, 0, 0)
    a, b = replay(RebootWorld, profile, True, path), replay(RebootWorld, profile, True, path)
    assert a.key() == b.key()
    assert a.trace.digest() == b.trace.digest()


def test_a_search_without_register_snapshots_still_explains_with_them() -> None:
    """clock-tick reads no register of the events, so the search records them without the
    snapshots; the counterexample's events are those of a full replay of its path."""
    result = explore_graph(RebootWorld, CLOCK, get_profile(SEED.buggy), True, family="reboot")
    ce = result.counterexample
    assert ce is not None
    full = replay(RebootWorld, get_profile(SEED.buggy), True, ce.path)
    assert ce.events == full.trace.events
    assert ce.violation == CLOCK.check(full.trace.events)
    assert any(e.rvi is not None for e in ce.events)


@pytest.mark.parametrize("path", [(1, 0, 9, 2, 0, 0, 0, 1), (0, 4, 8, 2, 0, 9, 0, 0, 3),
                                  (3, 0, 0, 0, 0, 1)])
def test_events_without_register_snapshots_are_the_same_events(path: tuple[int, ...]) -> None:
    profile = get_profile(SEED.buggy)
    full = replay(RebootWorld, profile, True, path).trace.events
    lean = replay(RebootWorld, profile, True, path, registers=False).trace.events
    register_fields = set(Event.__struct_fields__) - {"time", "cpu"}
    assert len(lean) == len(full) > 10
    for a, b in zip(lean, full, strict=True):
        assert type(a) is type(b) and a.time == b.time
        assert all(getattr(a, f) is None for f in register_fields)
        others = set(type(a).__struct_fields__) - register_fields - {"before"}
        assert all(getattr(a, f) == getattr(b, f) for f in others)
    assert any(b.irr is not None for b in full)


def test_search_is_deterministic() -> None:
    runs = [explore_graph(RebootWorld, CLOCK, get_profile(SEED.buggy), True, family="reboot")
            for _ in range(2)]
    first, second = ((r.states, r.transitions, r.depth) for r in runs)
    assert first == second
    assert runs[0].counterexample is not None and runs[1].counterexample is not None
    assert runs[0].counterexample.path == runs[1].counterexample.path


def test_fixed_profile_is_proven_clean() -> None:
    """Every reachable state of the family, no bound on the choices: a proof within the model."""
    result = explore_graph(RebootWorld, CLOCK, get_profile(SEED.fixed), True, family="reboot",
                           budget=600)
    assert result.counterexample is None
    assert result.complete and not result.budget_exhausted
    # The graph's size as first measured, when each state was rebuilt by replaying its path:
    # restoring snapshots instead must find the very same graph. A change to the model that
    # changes it is a change of what is proven, to be made (and these numbers updated) knowingly.
    assert (result.states, result.transitions, result.subsumed) == (11_628, 31_884, 20_257)
    assert (result.depth, result.max_steps, result.final_states) == (4, 9, 186)


class ReplayWorld:
    """The search's reference: a state's snapshot is its path, and restoring it replays the path
    from the initial state (how `--exhaustive` first worked), so nothing is carried over."""

    def __init__(self, profile: Profile, apicv: bool) -> None:
        self.profile, self.apicv = profile, apicv
        self.inner = RebootWorld(profile, apicv)
        self.path: tuple[int, ...] = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, action: int) -> None:
        self.inner.step(action)
        self.path += (action,)

    def snapshot(self) -> tuple[int, ...]:
        return self.path

    def restore(self, path: tuple[int, ...]) -> None:
        self.inner = replay(RebootWorld, self.profile, self.apicv, path)  # type: ignore[assignment]
        self.path = path


def test_snapshots_find_the_graph_replays_find() -> None:
    profile = get_profile(SEED.buggy)
    fast = explore_graph(RebootWorld, CLOCK, profile, True, family="reboot")
    slow = explore_graph(ReplayWorld, CLOCK, profile, True, family="reboot")
    assert fast.counterexample is not None and slow.counterexample is not None
    assert (fast.states, fast.transitions, fast.subsumed, fast.depth) == \
        (slow.states, slow.transitions, slow.subsumed, slow.depth)
    assert fast.counterexample.path == slow.counterexample.path
    assert fast.counterexample.events == slow.counterexample.events


def explore_json(capsys: Capture, *args: str) -> tuple[int, Any]:
    code = main(["explore", "--exhaustive", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_cli_reports_states_transitions_and_depth(capsys: Capture) -> None:
    code, doc = explore_json(capsys, "--property", "clock-tick", "--profile", SEED.buggy)
    assert code == 1
    assert doc["exhaustive"] is True and doc["violation"] is True and doc["proof"] is False
    cov = doc["coverage"]
    assert {"states", "transitions", "depth", "max_steps", "final_states"} <= set(cov)
    assert cov["states"] > 0 and cov["transitions"] >= cov["states"] - 1
    assert doc["counterexample"]["choices"] == [1, 7, 1]
    assert doc["counterexample"]["explanation"][-1]["step"] == "violation"


def test_cli_refuses_a_family_without_a_state_graph(capsys: Capture) -> None:
    code = main(["explore", "--exhaustive", "--property", "restored-timer-fires",
                 "--profile", SEED.buggy])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "state-graph" in err
