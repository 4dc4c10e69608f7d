"""The parts of a campaign that need no Ray: chunking, the random kind's chunks against the
single run, merging (order-free, idempotent), the results directory, and the command's errors."""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from apiclab.backends.base import Availability, RunResult
from apiclab.campaign.random_kind import RandomKind, program_hash
from apiclab.campaign.store import ResultsDir
from apiclab.campaign.tasks import Task, chunks, default_chunk
from apiclab.cli.main import main
from apiclab.conform.backends import ModelBackend
from apiclab.conform.differential import campaign
from apiclab.engine.trace import Trace
from apiclab.guest.program import Program

HOSTS: dict[str, Any] = {"h1": {"backends": {"model": "m", "fake": "fake 1"}}}


class DropsLastRead:
    """A 'real' backend that loses the last register read of programs with an odd step count:
    disagreements of one kind, on a known subset of programs."""

    name = "fake"

    def availability(self) -> Availability:
        return Availability(True, "fake 1")

    def run(self, program: Program, **_: Any) -> RunResult:
        trace = ModelBackend().run(program).trace
        if len(program.steps) % 2:
            reads = [i for i, e in enumerate(trace.events) if e.kind == "read"]
            if reads:
                events = [e for i, e in enumerate(trace.events) if i != reads[-1]]
                trace = Trace(events)
        return RunResult(trace=trace)


def test_chunks_cover_the_range_once() -> None:
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunks(3, 5) == [(0, 3)]
    for n in (1, 199, 200, 201):
        for w in (1, 2, 7):
            parts = chunks(n, default_chunk(n, w))
            assert [i for a, b in parts for i in range(a, b)] == list(range(n))


def _chunk_results(monkeypatch: pytest.MonkeyPatch, n: int, seed: int,
                   splits: list[int]) -> tuple[list[Task], dict[str, dict[str, Any]]]:
    """Run the random kind's chunk tasks in this process, the fake backend standing in for a
    real one."""
    import apiclab.conform.backends as cb

    real_make = cb.make_backend
    monkeypatch.setattr(cb, "make_backend",
                        lambda name: DropsLastRead() if name == "fake" else real_make(name))
    kind = RandomKind()
    tasks, results = [], {}
    bounds = [0, *splits, n]
    for a, b in itertools.pairwise(bounds):
        task = Task(f"random-h1-{a:09d}-{b:09d}", "random",
                    {"op": "chunk", "seed": seed, "start": a, "stop": b,
                     "backends": ["model", "fake"]}, "h1")
        tasks.append(task)
        results[task.id] = {**kind.run(task.params), "node": "n1"}
    return tasks, results


def test_chunks_merge_to_the_single_runs_counts_and_first_disagreements(
        monkeypatch: pytest.MonkeyPatch) -> None:
    n, seed = 40, 3
    hashes = 0

    def observe(index: int, events: list[dict[str, Any]]) -> None:
        nonlocal hashes
        hashes ^= program_hash(index, events)

    stats, found, _ = campaign(n, seed, ModelBackend(), {"fake": DropsLastRead()},
                               observe=observe)
    assert found, "the fake backend must disagree somewhere for this test to mean anything"
    params = {"programs": n, "seed": seed, "backends": ["model", "fake"], "chunk": 0}
    kind = RandomKind()
    docs = []
    for splits in ([], [7], [1, 13, 29, 39]):
        tasks, results = _chunk_results(monkeypatch, n, seed, splits)
        doc = kind.merge(params, tasks, results, HOSTS)
        assert doc["complete"] and doc["programs"] == n
        assert doc["disagreements"] == len(found)
        fake = doc["backends"]["fake@h1"]
        assert (fake["agree"], fake["disagree"]) == (stats["fake"].agree, stats["fake"].disagree)
        assert doc["model_fingerprint"] == f"{hashes:032x}"
        firsts = {}
        for d in found:
            firsts.setdefault(d.signature, (d.index, 0))
            firsts[d.signature] = (firsts[d.signature][0], firsts[d.signature][1] + 1)
        assert {tuple(k["signature"]): (k["first_program"], k["count"])
                for k in doc["kinds"]} == firsts
        # the follow-up shrinks are those of the single run: each kind's first program
        shrinks = kind.followups(params, tasks, results)
        assert sorted(t.params["index"] for t in shrinks) == sorted(i for i, _ in firsts.values())
        docs.append(doc)
    assert outcome(docs[0]) == outcome(docs[1]) == outcome(docs[2])


def outcome(doc: dict[str, Any]) -> dict[str, Any]:
    """What a random campaign found, without its timings and the way it was split."""
    return {
        "programs": doc["programs"], "complete": doc["complete"],
        "disagreements": doc["disagreements"], "kinds": doc["kinds"],
        "model_fingerprint": doc["model_fingerprint"],
        "backends": {name: {k: s[k] for k in ("programs", "agree", "disagree", "errors")}
                     for name, s in doc["backends"].items()},
    }


def test_merge_ignores_order_and_reports_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks, results = _chunk_results(monkeypatch, 20, 1, [5, 12])
    params = {"programs": 20, "seed": 1, "backends": ["model", "fake"], "chunk": 5}
    kind = RandomKind()
    whole = kind.merge(params, tasks, results, HOSTS)
    shuffled = list(results.items())
    random.Random(0).shuffle(shuffled)
    assert kind.merge(params, list(reversed(tasks)), dict(shuffled), HOSTS) == whole
    partial = dict(results)
    del partial[tasks[1].id]
    gap = kind.merge(params, tasks, partial, HOSTS)
    assert not gap["complete"] and gap["hosts"]["h1"]["programs"] == 13


def test_plan_runs_model_only_work_once_anywhere_and_real_work_per_host_kind() -> None:
    hosts = {"a": {"backends": {"kvm": "KVM API 12"}}, "b": {"backends": {"kvm": None}},
             "c": {"backends": {"kvm": "KVM API 12", "qemu": "QEMU 7.2"}}}
    kind = RandomKind()
    only_model = kind.plan({"programs": 10, "seed": 0, "backends": ["model"], "chunk": 4},
                           hosts)
    assert [(t.host, t.params["start"], t.params["stop"]) for t in only_model] == \
        [(None, 0, 4), (None, 4, 8), (None, 8, 10)]
    real = kind.plan({"programs": 4, "seed": 0, "backends": ["model", "kvm", "qemu"],
                      "chunk": 4}, hosts)
    assert [(t.host, t.params["backends"], t.resources) for t in real] == [
        ("a", ["model", "kvm"], {"kvm": 1.0}),
        ("c", ["model", "kvm", "qemu"], {"kvm": 1.0}),
    ]


def test_results_directory_keeps_one_result_per_task_and_drops_torn_writes(
        tmp_path: Path) -> None:
    store = ResultsDir(tmp_path / "r")
    task = Task("random-any-000000000-000000005", "random", {"op": "chunk"})
    store.create("random", {"programs": 5}, {}, [task])
    store.write(task, {"n": 1})
    store.write(task, {"n": 2})  # a retried task replaces its result; it is not added
    (store.tasks_dir / ".random-x.json.abc.tmp").write_text("{half")
    assert store.results() == {task.id: {"n": 2}}
    assert not list(store.tasks_dir.glob(".*.tmp"))
    kind, params, _, tasks = store.load()
    assert (kind, params, tasks) == ("random", {"programs": 5}, [task])
    with pytest.raises(Exception, match="already holds a campaign"):
        store.create("random", {}, {}, [])


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["campaign", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("argv", "message"), [
    (["random", "--programs", "0"], "--programs '0': expected an integer ≥ 1"),
    (["random", "--programs", "5", "--backends", "kvm"], "--backends: the model is the referee"),
    (["random", "--programs", "5", "--workers", "0"], "--workers '0': expected an integer ≥ 1"),
    (["explore", "--property", "clock-tick", "--seeds", "5:2"], "--seeds '5:2'"),
    (["explore", "--property", "clock-tick", "--profiles", "kvm-9.99"], "unknown profile"),
    ([], "give a KIND"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                          argv: list[str], message: str) -> None:
    status, out, err = _cli(capsys, *argv)
    assert status == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_resume_of_a_directory_without_a_campaign_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = _cli(capsys, "--resume", str(tmp_path))
    assert status == 2 and "no campaign there" in err


def test_without_ray_the_command_says_how_to_get_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import fails
    status, out, err = _cli(capsys, "random", "--programs", "5", "--results",
                            str(tmp_path / "r"))
    assert status == 2 and out == ""
    assert err == "apiclab: apiclab campaign needs Ray: pip install 'apiclab[campaign]'\n"
    assert not (tmp_path / "r").exists()


def test_manifest_is_json_with_the_plan(tmp_path: Path) -> None:
    store = ResultsDir(tmp_path)
    store.create("random", {"programs": 2}, {"h": {}}, [Task("t", "random", {"a": 1}, "h")])
    doc = json.loads(store.manifest.read_text())
    assert doc["tasks"] == [{"id": "t", "kind": "random", "params": {"a": 1}, "host": "h",
                             "resources": {}}]


def test_a_node_describes_itself_and_its_host_kind_ignores_its_name() -> None:
    from apiclab.campaign.nodes import describe, host_kind

    desc = describe()
    assert set(desc) >= {"kernel", "cpu_model", "kvm_module", "vmx", "apicv", "backends"}
    assert desc["backends"]["model"]  # the model runs everywhere
    kind = host_kind(desc)
    assert kind.startswith(desc["kernel"])
    assert host_kind({**desc, "hostname": "elsewhere"}) == kind
    assert host_kind({**desc, "apicv": not desc["apicv"]}) != kind


def test_an_address_where_nothing_listens_is_refused_before_ray_is_asked() -> None:
    from apiclab.campaign.ray_driver import check_address
    from apiclab.errors import UserError

    with pytest.raises(UserError, match=r"--address 127.0.0.1:1: no Ray head answers there"):
        check_address("127.0.0.1:1")
    with pytest.raises(UserError, match="expected HOST:PORT"):
        check_address("head:port")
    check_address("auto")  # left to Ray


def test_suite_runs_the_model_once_and_real_backends_per_host_kind_into_one_matrix() -> None:
    from apiclab.campaign.suite_kind import SuiteKind
    from apiclab.conform.case import builtin_dir

    names = ["tpr-masks-pending", "ppr-from-tpr", "eoi-empty-isr"]
    cases = [{"name": n, "path": str(builtin_dir() / f"{n}.toml"),
              "text": (builtin_dir() / f"{n}.toml").read_text()} for n in names]
    params = {"backends": ["model", "kvm"], "cases": cases, "chunk": 2}
    hosts = {"k1": {"backends": {"kvm": "KVM API 12"}}, "k2": {"backends": {"kvm": None}}}
    kind = SuiteKind()
    tasks = kind.plan(params, hosts)
    assert [(t.host, t.params["backends"], t.params["start"], t.params["stop"]) for t in tasks] \
        == [(None, ["model"], 0, 2), (None, ["model"], 2, 3),
            ("k1", ["kvm"], 0, 2), ("k1", ["kvm"], 2, 3)]
    results: dict[str, dict[str, Any]] = {}
    for t in tasks:
        if t.host is None:  # the model for real; KVM's answers made up: k1 differs on one case
            results[t.id] = {**kind.run(t.params), "node": "n0"}
        else:
            results[t.id] = {
                "start": t.params["start"], "stop": t.params["stop"], "node": "n1",
                "backends": {"kvm": {"available": True, "version": "KVM API 12"}},
                "cases": [{"case": c["name"], "sdm": "x", "not_run": {},
                           "results": {"kvm": "differs" if c["name"] == "ppr-from-tpr"
                                       else "agrees"},
                           "differences": [{"backend": "kvm", "index": 1}]
                           if c["name"] == "ppr-from-tpr" else []}
                          for c in t.params["cases"]]}
    doc = kind.merge(params, tasks, results, hosts)
    assert doc["complete"] and list(doc["columns"]) == ["model", "kvm@k1"]
    assert [r["results"] for r in doc["matrix"]] == [
        {"model": "agrees", "kvm@k1": "agrees"}, {"model": "agrees", "kvm@k1": "differs"},
        {"model": "agrees", "kvm@k1": "agrees"}]
    diff = doc["matrix"][1]["differences"]
    assert diff == [{"backend": "kvm", "index": 1, "column": "kvm@k1", "host": "k1",
                     "node": "n1"}]
    del results[tasks[-1].id]
    assert not kind.merge(params, tasks, results, hosts)["complete"]


def test_storm_runs_once_per_repeat_on_every_host_kind_with_kvm_and_none_without() -> None:
    from apiclab.campaign.storm_kind import StormKind
    from apiclab.errors import UserError

    params = {"reboots": 10, "pending": [0xE1], "wait_ms": 50, "repeat": 2}
    hosts = {"k1": {"backends": {"kvm": "KVM API 12"}, "nodes": ["a"]},
             "k2": {"backends": {"kvm": None}}}
    tasks = StormKind().plan(params, hosts)
    assert [(t.id, t.host, t.resources) for t in tasks] == [
        ("storm-k1-0000", "k1", {"kvm": 1.0}), ("storm-k1-0001", "k1", {"kvm": 1.0})]
    with pytest.raises(UserError, match="no node of the cluster has a usable /dev/kvm"):
        StormKind().plan(params, {"k2": hosts["k2"]})


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                    reason="needs read-write /dev/kvm")
def test_a_storm_task_is_kvm_storms_document_and_merges_per_host_kind() -> None:
    from apiclab.campaign.storm_kind import StormKind

    kind = StormKind()
    params = {"reboots": 10, "pending": [0xE1], "wait_ms": 50, "repeat": 2}
    hosts = {"k1": {"backends": {"kvm": "KVM API 12"}, "nodes": ["a"]}}
    tasks = kind.plan(params, hosts)
    results = {t.id: {**kind.run(t.params), "node": "a"} for t in tasks}
    doc = results[tasks[0].id]["storm"]
    assert doc["reboots"] == 10 and doc["guest"]["pending"] == [0xE1]
    assert sum(doc["host"]["outcomes"].values()) == 10
    merged = kind.merge(params, tasks, results, hosts)
    row = merged["hosts"][0]
    assert merged["complete"] and row["storms_done"] == 2 and row["reboots"] == 20
    assert sum(row["host_outcomes"].values()) == sum(row["model_outcomes"].values()) == 20
