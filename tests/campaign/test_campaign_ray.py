"""Campaigns on a local Ray cluster (2 CPUs), started once for this module and stopped after it:
the merged model result equals the run without Ray, a worker killed mid-task is retried with no
program lost or counted twice, and a driver killed mid-campaign is resumed from its directory."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apiclab.campaign.random_kind import program_hash
from apiclab.campaign.ray_driver import HOLD_ENV
from apiclab.campaign.tasks import default_chunk
from apiclab.cli.main import main
from apiclab.conform.backends import ModelBackend
from apiclab.conform.differential import campaign
from apiclab.explore.catalogue import CATALOGUE

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'apiclab[campaign]')")

N, SEED = 120, 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local cluster for the module (Ray takes seconds to start on 2 shared cores); its
    workers inherit the hold directory through the environment."""
    hold = tmp_path_factory.mktemp("hold")
    os.environ[HOLD_ENV] = str(hold)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        yield hold
    finally:
        ray.shutdown()
        os.environ.pop(HOLD_ENV, None)


@pytest.fixture(scope="module")
def single_run() -> dict[str, Any]:
    """The run without Ray: `conform --random` over the same programs, and the fingerprint of
    what the model showed on each."""
    hashes = 0

    def observe(index: int, events: list[dict[str, Any]]) -> None:
        nonlocal hashes
        hashes ^= program_hash(index, events)

    stats, found, _ = campaign(N, SEED, ModelBackend(), {}, observe=observe)
    return {"programs": stats["model"].programs, "disagreements": len(found),
            "model_fingerprint": f"{hashes:032x}"}


def _campaign(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status = main(["campaign", *argv, "--json"])
    return status, _document(capsys)


def _document(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The JSON document on standard output. (The command sends Ray's own notices to standard
    error; a notice about an earlier test's killed worker can still reach the shared cluster's
    driver, this process, after that command ended, so lines before the document are skipped.)"""
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, err
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


def _found(doc: dict[str, Any]) -> dict[str, Any]:
    return {"programs": doc["backends"]["model"]["programs"],
            "disagreements": doc["disagreements"], "model_fingerprint": doc["model_fingerprint"]}


def test_conform_random_json_of_the_single_run(capsys: pytest.CaptureFixture[str],
                                               single_run: dict[str, Any],
                                               tmp_path: Path) -> None:
    assert main(["conform", "--random", str(N), "--seed", str(SEED), "--backends", "model",
                 "--candidates", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["programs"], doc["disagreements"]) == (N, single_run["disagreements"])


@pytest.mark.parametrize("workers", [1, 2])
def test_merged_model_result_equals_the_run_without_ray(
        cluster: Path, capsys: pytest.CaptureFixture[str], single_run: dict[str, Any],
        tmp_path: Path, workers: int) -> None:
    # the cluster is shared, so "W workers" is the split a W-worker campaign makes
    chunk = default_chunk(N, workers)
    status, doc = _campaign(capsys, "random", "--programs", str(N), "--seed", str(SEED),
                            "--backends", "model", "--chunk", str(chunk),
                            "--results", str(tmp_path / "r"))
    assert status == 0 and doc["complete"]
    assert doc["chunks"] == {"planned": -(-N // chunk), "done": -(-N // chunk), "size": chunk}
    assert _found(doc) == single_run
    assert doc["programs"] == N
    assert json.loads((tmp_path / "r" / "result.json").read_text())["model_fingerprint"] == \
        single_run["model_fingerprint"]


def _started(hold: Path, task_id: str) -> list[int]:
    return [int(p.name.rsplit(".", 1)[1]) for p in hold.glob(f"{task_id}.*")]


def _wait_for(predicate: Any, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_worker_killed_mid_task_is_retried_and_nothing_is_lost_or_doubled(
        cluster: Path, capsys: pytest.CaptureFixture[str], single_run: dict[str, Any],
        tmp_path: Path) -> None:
    victim = f"random-any-{0:09d}-{30:09d}"
    (cluster / f"hold-{victim}").touch()
    killed: list[int] = []

    def kill_the_worker() -> None:
        """From the side (the command runs in the main thread: it installs signal handlers):
        wait until the victim task runs in a worker, kill that worker, let the retry through."""
        try:
            _wait_for(lambda: _started(cluster, victim), "the task to start")
            pid = _started(cluster, victim)[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        finally:
            (cluster / f"hold-{victim}").unlink()

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    try:
        status = main(["campaign", "random", "--programs", str(N), "--seed", str(SEED),
                       "--backends", "model", "--chunk", "30", "--json",
                       "--results", str(tmp_path / "r")])
    finally:
        killer.join(timeout=300)
    doc = _document(capsys)
    assert killed, "the victim task never started"
    assert status == 0 and doc["complete"]
    assert len(_started(cluster, victim)) >= 2, "the killed task was not run again"
    assert _found(doc) == single_run
    assert doc["tasks"]["run_now"] == 4 and not doc["tasks"]["failed"]


def test_a_driver_killed_mid_campaign_resumes_from_its_directory(
        cluster: Path, capsys: pytest.CaptureFixture[str], single_run: dict[str, Any],
        tmp_path: Path) -> None:
    results = tmp_path / "r"
    held = [f"random-any-{a:09d}-{a + 20:09d}" for a in (60, 80, 100)]
    for task_id in held:
        (cluster / f"hold-{task_id}").touch()
    address = ray.get_runtime_context().gcs_address
    driver = subprocess.Popen(
        [sys.executable, "-m", "apiclab.cli.main", "campaign", "random", "--programs", str(N),
         "--seed", str(SEED), "--backends", "model", "--chunk", "20", "--address", address,
         "--results", str(results)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(list((results / "tasks").glob("*.json"))) == 3,
                  "the unheld tasks' results")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
        for task_id in held:
            (cluster / f"hold-{task_id}").unlink()
    assert not (results / "result.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in (results / "tasks").glob("*.json")}
    status, doc = _campaign(capsys, "--resume", str(results))
    assert status == 0 and doc["complete"]
    assert doc["tasks"]["run_now"] == 3  # only the held ones: nothing ran twice
    assert {p: (results / "tasks" / p).stat().st_mtime_ns for p in before} == before
    assert _found(doc) == single_run


def test_resume_of_a_finished_campaign_runs_nothing(
        cluster: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    results = str(tmp_path / "r")
    status, first = _campaign(capsys, "random", "--programs", "10", "--seed", "1", "--backends",
                              "model", "--results", results)
    assert status == 0
    status, again = _campaign(capsys, "--resume", results)
    assert status == 0 and again["tasks"]["run_now"] == 0
    assert again["model_fingerprint"] == first["model_fingerprint"]
    status, out = main(["campaign", "random", "--programs", "10", "--results", results]), \
        capsys.readouterr()
    assert status == 2 and "already holds a campaign" in out.err


def test_explore_and_suite_campaigns_merge_into_one_matrix(
        cluster: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    seed_fix = CATALOGUE[0]  # the seed's bug: its property, the profile before and after
    status, doc = _campaign(capsys, "explore", "--property", seed_fix.property, "--profiles",
                            f"{seed_fix.buggy},{seed_fix.fixed}", "--bound", "1", "--seeds",
                            "0:2", "--random-runs", "5", "--results", str(tmp_path / "e"))
    assert status == 0 and doc["complete"]
    rows = {r["profile"]: r for r in doc["rows"]}
    assert rows[seed_fix.buggy]["violation"] and not rows[seed_fix.fixed]["violation"]
    assert rows[seed_fix.fixed]["tasks_done"] == 3
    status, doc = _campaign(capsys, "suite", "--backends", "model", "--only",
                            "tpr-masks-pending", "--only", "ppr-from-tpr", "--results",
                            str(tmp_path / "s"))
    assert status == 0 and doc["complete"]
    assert {r["case"]: r["results"] for r in doc["matrix"]} == {
        "tpr-masks-pending": {"model": "agrees"}, "ppr-from-tpr": {"model": "agrees"}}
