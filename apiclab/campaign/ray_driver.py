"""Running a campaign's tasks on Ray: start or join the cluster, learn its nodes, place each task
on a node of the host kind it needs, store every result as it arrives, retry what was lost.

Ray is imported here only, and dynamically: without the extra the rest of apiclab imports and
type-checks, and the command says how to install it.

Fault tolerance, in layers:
- a worker process that dies mid-task: Ray runs the task again (`max_retries`), on the same node
  when the task is pinned to it;
- a node that dies: its pinned tasks fail after their retries; the driver resubmits them to
  another node of the same host kind (or reports them as waiting for one);
- the driver that dies: every finished task is already a file; `--resume DIR` runs the rest.
A task's result is stored under its id, so however often it ran, it counts once.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apiclab.campaign.kinds import KINDS
from apiclab.campaign.nodes import describe, host_kind
from apiclab.campaign.store import ResultsDir
from apiclab.campaign.tasks import Task
from apiclab.errors import UserError

INSTALL_HINT = "apiclab campaign needs Ray: pip install 'apiclab[campaign]'"
MAX_RETRIES = 3  # Ray re-runs a task whose worker died this often
MAX_RESUBMITS = 3  # the driver re-places a task whose node died this often
DESCRIBE_TIMEOUT_S = 120.0
# Test hook (tests/campaign): a directory where each task notes "<task id>.<pid>" when it starts
# and then waits while a file `hold` or `hold-<task id>` is there, so a test can kill a worker or
# the driver at a known point.
HOLD_ENV = "APICLAB_CAMPAIGN_HOLD"


def import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def local_resources() -> dict[str, float]:
    """The custom resources of a local cluster: one `kvm` slot when this host's KVM is usable,
    as a cluster node would declare with `ray start --resources='{"kvm": 1}'`."""
    return {"kvm": 1.0} if os.access("/dev/kvm", os.R_OK | os.W_OK) else {}


class Cluster:
    """Join the cluster at `address`, or start a local one with `workers` CPUs; a cluster this
    process did not start (a test's, or one already initialised) is left running."""

    def __init__(self, address: str | None, workers: int) -> None:
        self.ray = import_ray()
        self.address, self.workers = address, workers
        self.owned = False

    def __enter__(self) -> Cluster:
        ray = self.ray
        if ray.is_initialized():
            return self
        if self.address:
            check_address(self.address)
        # Ray's core installs its own SIGTERM handler, which logs and kills the process at once;
        # apiclab's (SIGTERM as an exception, so the cluster is shut down and the run says how
        # to resume) is put back after it
        handlers = _python_handlers()
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, resources=local_resources(),
                         include_dashboard=False, logging_level=logging.ERROR,
                         log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"--address {self.address}" if self.address else "a local Ray cluster"
            raise UserError(f"{where}: cannot start or join it ({str(e).splitlines()[0]})"
                            ) from None
        finally:
            _restore_handlers(handlers)
        self.owned = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.ray.shutdown()

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))


def check_address(address: str) -> None:
    """Refuse a HOST:PORT where nothing listens before Ray is asked: Ray itself retries for
    minutes, printing a warning every few seconds. Other forms (`auto`, `ray://...`) go to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or "/" in address or address == "auto":
        return
    if not port.isdigit() or not host:
        raise UserError(f"--address {address!r}: expected HOST:PORT of the cluster's head")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"--address {address}: no Ray head answers there "
                        f"({e.strerror or type(e).__name__})") from None


def _python_handlers() -> dict[signal.Signals, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(handlers: dict[signal.Signals, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


@dataclass
class Node:
    id: str
    name: str
    kind: str
    resources: dict[str, float]
    description: dict[str, Any]


def execute(task: dict[str, Any]) -> dict[str, Any]:
    """One task on a worker (this runs in a Ray worker process)."""
    _hold(str(task["id"]))
    result = KINDS[task["kind"]].run(task["params"])
    result["node"] = f"{socket.gethostname()}/{_node_ip()}"
    return result


def describe_node() -> dict[str, Any]:
    desc = describe()
    desc["node"] = f"{socket.gethostname()}/{_node_ip()}"
    return desc


def _node_ip() -> str:
    try:
        ip: str = importlib.import_module("ray.util").get_node_ip_address()
        return ip
    except Exception:  # outside Ray (unit tests)
        return "local"


def _hold(task_id: str) -> None:
    directory = os.environ.get(HOLD_ENV)
    if not directory:
        return
    root = Path(directory)
    (root / f"{task_id}.{os.getpid()}").touch()
    deadline = time.monotonic() + 300
    while ((root / "hold").exists() or (root / f"hold-{task_id}").exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)


def discover(cluster: Cluster) -> list[Node]:
    """Every live node with CPUs, described by a task pinned to it."""
    ray = cluster.ray
    strategies = importlib.import_module("ray.util.scheduling_strategies")
    remote = ray.remote(describe_node)
    alive = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    refs = {
        n["NodeID"]: remote.options(
            num_cpus=0, max_retries=MAX_RETRIES,
            scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
        ).remote()
        for n in alive
    }
    nodes = []
    for n in alive:
        try:
            desc = ray.get(refs[n["NodeID"]], timeout=DESCRIBE_TIMEOUT_S)
        except Exception as e:  # a node that cannot describe itself gets no work
            print(f"apiclab campaign: node {n.get('NodeManagerAddress')} left out: "
                  f"{type(e).__name__}", file=sys.stderr)
            continue
        nodes.append(Node(n["NodeID"], str(desc["node"]), host_kind(desc),
                          dict(n["Resources"]), desc))
    if not nodes:
        raise UserError("the Ray cluster has no node with CPUs that answers")
    return nodes


def host_kinds(nodes: list[Node]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node in nodes:
        entry = out.setdefault(node.kind, {**node.description, "nodes": []})
        entry["nodes"].append(node.name)
    for entry in out.values():
        entry.pop("node", None)
        entry.pop("hostname", None)
    return out


@dataclass
class Outcome:
    results: dict[str, dict[str, Any]]
    failed: dict[str, str] = field(default_factory=dict)  # task id -> why it did not finish
    ran: int = 0  # tasks run by this driver (not found done in the directory)


class Scheduler:
    """Places tasks on nodes and collects their results into the results directory."""

    def __init__(self, cluster: Cluster, nodes: list[Node], store: ResultsDir,
                 progress: Callable[[int, int, Mapping[str, int]], None] | None = None) -> None:
        self.cluster, self.nodes, self.store, self.progress = cluster, nodes, store, progress
        self.remote = cluster.ray.remote(execute)
        self.strategies = importlib.import_module("ray.util.scheduling_strategies")
        self.turn: dict[str, int] = {}
        self.per_node: dict[str, int] = {}

    def _node_for(self, task: Task, avoid: set[str]) -> Node | None:
        """The next node of the task's host kind, round robin, skipping nodes that failed it."""
        fits = [n for n in self.nodes if n.kind == task.host and n.id not in avoid]
        if not fits:
            return None
        i = self.turn.get(task.host or "", 0)
        self.turn[task.host or ""] = i + 1
        return fits[i % len(fits)]

    def _submit(self, task: Task, avoid: set[str]) -> tuple[Any, str | None] | None:
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": MAX_RETRIES,
                                   "retry_exceptions": False}
        node_id = None
        if task.host is not None:
            node = self._node_for(task, avoid)
            if node is None:
                return None
            node_id = node.id
            options["scheduling_strategy"] = self.strategies.NodeAffinitySchedulingStrategy(
                node.id, soft=False)
            # take the custom resources the node declares (a KVM slot), so KVM work on a node
            # does not overlap beyond what it offers
            wanted = {k: v for k, v in task.resources.items() if k in node.resources}
            if wanted:
                options["resources"] = wanted
        return self.remote.options(**options).remote(task.as_dict()), node_id

    def run(self, tasks: list[Task], done: dict[str, dict[str, Any]]) -> Outcome:
        ray = self.cluster.ray
        errors = importlib.import_module("ray.exceptions")
        lost = (errors.WorkerCrashedError, errors.NodeDiedError, errors.ObjectLostError,
                errors.TaskUnschedulableError)
        out = Outcome(dict(done))
        todo = [t for t in tasks if t.id not in done]
        pending: dict[Any, tuple[Task, str | None, set[str]]] = {}
        for task in todo:
            self._place(task, set(), pending, out)
        total, finished = len(tasks), len(tasks) - len(todo)
        self._show(finished, total)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                task, node_id, avoid = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except lost as e:
                    if len(avoid) < MAX_RESUBMITS and node_id is not None:
                        self._place(task, avoid | {node_id}, pending, out,
                                    f"lost ({type(e).__name__}) and no other")
                    else:
                        out.failed[task.id] = f"lost: {type(e).__name__}"
                    continue
                except errors.RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    out.failed[task.id] = f"{type(cause).__name__}: {cause}".splitlines()[0]
                    continue
                result = self._save_files(task, result)
                self.store.write(task, result)
                out.results[task.id] = result
                out.ran += 1
                finished += 1
                node = str(result.get("node", "?"))
                self.per_node[node] = self.per_node.get(node, 0) + 1
                self._show(finished, total)
        return out

    def _place(self, task: Task, avoid: set[str],
               pending: dict[Any, tuple[Task, str | None, set[str]]], out: Outcome,
               why: str = "no") -> None:
        placed = self._submit(task, avoid)
        if placed is None:
            out.failed[task.id] = f"{why} live node of host kind {task.host}"
        else:
            pending[placed[0]] = (task, placed[1], avoid)

    def _save_files(self, task: Task, result: dict[str, Any]) -> dict[str, Any]:
        """Candidate files a task made are written on the driver's side, under the host kind."""
        files = result.pop("files", None)
        if files:
            result["saved"] = [str(self.store.save_candidate(task.host or "any", name, text))
                               for name, text in sorted(files.items())]
        return result

    def _show(self, done: int, total: int) -> None:
        if self.progress:
            self.progress(done, total, self.per_node)


def run_campaign(store: ResultsDir, cluster: Cluster, nodes: list[Node], kind_name: str,
                 params: dict[str, Any], tasks: list[Task],
                 progress: Callable[[int, int, Mapping[str, int]], None] | None = None,
                 ) -> tuple[dict[str, Any], Outcome]:
    """Run the planned tasks not yet done, then the follow-ups they call for; merge all."""
    kind = KINDS[kind_name]
    scheduler = Scheduler(cluster, nodes, store, progress)
    start = time.monotonic()
    outcome = scheduler.run(tasks, store.results())
    extra: list[Task] = []
    if not any(t.id in outcome.failed for t in tasks):
        extra = kind.followups(params, tasks, outcome.results)
        if extra:
            more = scheduler.run(extra, outcome.results)
            more.ran += outcome.ran
            more.failed.update(outcome.failed)
            outcome = more
    _, _, hosts, _ = store.load()
    doc = kind.merge(params, tasks + extra, outcome.results, hosts)
    doc["wall_seconds"] = round(time.monotonic() - start, 2)
    doc["tasks"] = {"planned": len(tasks) + len(extra),
                    "done": sum(t.id in outcome.results for t in tasks + extra),
                    "run_now": outcome.ran, "failed": outcome.failed,
                    "per_node": dict(scheduler.per_node)}
    return doc, outcome
