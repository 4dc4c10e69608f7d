"""Random programs per second on the model through `apiclab campaign` (a local Ray cluster with 1
and 2 worker CPUs) against the same programs without Ray, and Ray's overhead per task.

Ray's start-up (a local cluster takes seconds) is measured apart; the campaign figures are from
planning to the merged result, results directory included. The overhead per task is measured with
tasks of one program each on 1 worker: (wall time - the programs' own model time) / tasks.
Prints figures; asserts nothing about speed.

    python bench/campaign.py [--programs 2000] [--seed 5] [--tiny-tasks 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from apiclab.campaign import ray_driver as rd
from apiclab.campaign.kinds import KINDS
from apiclab.campaign.store import ResultsDir
from apiclab.campaign.tasks import default_chunk
from apiclab.conform.backends import ModelBackend
from apiclab.conform.differential import campaign


def without_ray(n: int, seed: int) -> float:
    start = time.monotonic()
    stats, _, _ = campaign(n, seed, ModelBackend(), {})
    assert stats["model"].programs == n
    return time.monotonic() - start


def with_ray(cluster: rd.Cluster, n: int, seed: int, chunk: int, root: Path) -> tuple[float, str]:
    """Wall seconds of one model-only random campaign and its model fingerprint."""
    start = time.monotonic()
    nodes = rd.discover(cluster)
    params: dict[str, Any] = {"programs": n, "seed": seed, "backends": ["model"], "chunk": chunk}
    tasks = KINDS["random"].plan(params, rd.host_kinds(nodes))
    store = ResultsDir(root)
    store.create("random", params, rd.host_kinds(nodes), tasks)
    doc, outcome = rd.run_campaign(store, cluster, nodes, "random", params, tasks)
    assert doc["complete"] and not outcome.failed
    return time.monotonic() - start, str(doc["model_fingerprint"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--tiny-tasks", type=int, default=100)
    args = parser.parse_args()
    n = args.programs
    ray = rd.import_ray()
    prints = set()
    with tempfile.TemporaryDirectory(prefix="apiclab-bench-campaign-") as tmp:
        for workers in (1, 2):
            start = time.monotonic()
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)
            try:
                up = time.monotonic() - start
                cluster = rd.Cluster(None, workers)
                chunk = default_chunk(n, workers)
                # the run without Ray right before, so both meet the same load on a shared host
                alone = without_ray(n, args.seed)
                wall, fp = with_ray(cluster, n, args.seed, chunk, Path(tmp) / f"w{workers}")
                prints.add(fp)
                print(f"Ray, {workers} worker{'s' if workers > 1 else ''}: {n} programs in "
                      f"{-(-n // chunk)} tasks of {chunk}: {wall:.2f} s = {n / wall:.0f} "
                      f"programs/s; without Ray just before: {n / alone:.0f} programs/s "
                      f"(cluster start-up {up:.1f} s, not counted; load average "
                      f"{os.getloadavg()[0]:.1f})")
                if workers == 1:
                    t = args.tiny_tasks
                    tiny, _ = with_ray(cluster, t, args.seed, 1, Path(tmp) / "tiny")
                    own = without_ray(t, args.seed)
                    print(f"overhead per task (1 worker, {t} tasks of 1 program): "
                          f"{(tiny - own) / t * 1000:.1f} ms")
            finally:
                ray.shutdown()
    print(f"model fingerprints equal across runs: {len(prints) == 1}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
