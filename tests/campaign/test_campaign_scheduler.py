"""The driver's placement without a cluster: Ray's API stands in for a fake that lets a test say
which placements die with their node, so re-placement on another node of the same host kind, and
giving up when none is left, can be seen (a real cluster here has one node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apiclab.campaign.ray_driver import Node, Scheduler
from apiclab.campaign.store import ResultsDir
from apiclab.campaign.tasks import Task

exceptions = pytest.importorskip("ray.exceptions", reason="Ray is not installed")
N1, N2, N3 = ("01" * 28, "02" * 28, "03" * 28)  # node ids are 28 bytes of hex, as Ray's


class Ref:
    """An object ref: hashable by identity, as Ray's are."""

    def __init__(self, task: dict[str, Any], node: str | None) -> None:
        self.task, self.node = task, node


class FakeRay:
    """remote(fn).options(...).remote(task) returns a ref; get() on it runs the task, unless the
    node it was pinned to is in `dead`, when it raises what Ray raises for a dead node."""

    def __init__(self, dead: set[str]) -> None:
        self.dead = dead
        self.placed: list[tuple[str, str | None, dict[str, float]]] = []

    def remote(self, fn: Any) -> Any:
        ray = self

        class Remote:
            def options(self, **opts: Any) -> Any:
                class Bound:
                    def remote(self, task: dict[str, Any]) -> Any:
                        node = getattr(opts.get("scheduling_strategy"), "node_id", None)
                        ray.placed.append((task["id"], node, opts.get("resources", {})))
                        return Ref(task, node)
                return Bound()
        return Remote()

    def wait(self, refs: list[Any], num_returns: int, timeout: float) -> tuple[list[Any], Any]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Ref) -> dict[str, Any]:
        task, node = ref.task, ref.node
        if node in self.dead:
            raise exceptions.NodeDiedError(f"node {node} died")
        if task["params"].get("boom"):
            raise exceptions.RayTaskError("execute", "tb", ValueError("bad params"))
        return {"value": task["params"]["v"], "node": node or "anywhere"}


class FakeCluster:
    def __init__(self, ray: FakeRay) -> None:
        self.ray = ray


def _store(root: Path) -> ResultsDir:
    store = ResultsDir(root)
    store.create("random", {}, {}, [])
    return store


def _nodes() -> list[Node]:
    return [Node(N1, "host-1", "kindA", {"CPU": 2, "kvm": 1}, {}),
            Node(N2, "host-2", "kindA", {"CPU": 2}, {}),
            Node(N3, "host-3", "kindB", {"CPU": 2, "kvm": 1}, {})]


def test_tasks_go_round_robin_to_their_host_kind_with_the_kvm_slot_where_declared(
        tmp_path: Path) -> None:
    ray = FakeRay(dead=set())
    tasks = [Task(f"t{i}", "random", {"v": i}, "kindA", {"kvm": 1.0}) for i in range(3)]
    tasks.append(Task("tb", "random", {"v": 9}, "kindB", {"kvm": 1.0}))
    tasks.append(Task("any", "random", {"v": 7}))
    out = Scheduler(FakeCluster(ray), _nodes(), _store(tmp_path)).run(tasks, {})
    assert not out.failed and out.ran == 5
    assert ray.placed == [("t0", N1, {"kvm": 1.0}), ("t1", N2, {}), ("t2", N1, {"kvm": 1.0}),
                          ("tb", N3, {"kvm": 1.0}), ("any", None, {})]
    assert {p.name for p in (tmp_path / "tasks").glob("*.json")} == \
        {f"{t.id}.json" for t in tasks}


def test_a_task_whose_node_died_is_placed_on_another_node_of_its_kind(tmp_path: Path) -> None:
    ray = FakeRay(dead={N1})
    tasks = [Task("t0", "random", {"v": 0}, "kindA"), Task("tb", "random", {"v": 1}, "kindB")]
    out = Scheduler(FakeCluster(ray), _nodes(), _store(tmp_path)).run(tasks, {})
    assert out.results["t0"]["node"] == N2  # re-placed, once, on the other kindA node
    assert [p for p in ray.placed if p[0] == "t0"] == [("t0", N1, {}), ("t0", N2, {})]
    assert not out.failed


def test_no_node_of_the_kind_left_or_a_failing_task_is_reported_not_retried(
        tmp_path: Path) -> None:
    ray = FakeRay(dead={N3})
    tasks = [Task("tb", "random", {"v": 1}, "kindB"), Task("x", "random", {"boom": 1}),
             Task("tc", "random", {"v": 2}, "kindC"), Task("ok", "random", {"v": 3})]
    out = Scheduler(FakeCluster(ray), _nodes(), _store(tmp_path)).run(tasks, {})
    assert out.failed == {"tb": "lost (NodeDiedError) and no other live node of host kind kindB",
                          "x": "ValueError: bad params",
                          "tc": "no live node of host kind kindC"}
    assert list(out.results) == ["ok"]


def test_tasks_already_in_the_directory_are_not_run_again(tmp_path: Path) -> None:
    ray = FakeRay(dead=set())
    tasks = [Task("a", "random", {"v": 1}), Task("b", "random", {"v": 2})]
    out = Scheduler(FakeCluster(ray), _nodes(), _store(tmp_path)).run(
        tasks, {"a": {"value": 1}})
    assert [p[0] for p in ray.placed] == ["b"] and out.ran == 1
    assert set(out.results) == {"a", "b"}
