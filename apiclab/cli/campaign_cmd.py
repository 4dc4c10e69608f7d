"""`apiclab campaign`: `conform --random`, the conform suite and `explore` spread over a Ray
cluster (a local one by default), merged by host kind, resumable from the results directory."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apiclab import interrupts
from apiclab.campaign.store import ResultsDir
from apiclab.campaign.tasks import default_chunk
from apiclab.conform.backends import BACKEND_NAMES, parse_backend_list
from apiclab.conform.report import dumps
from apiclab.errors import UserError

DEFAULT_RESULTS = Path("campaign-results")


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: the options may stand before or after the sub-command without one level's
    # default overwriting what was given at the other
    s = argparse.SUPPRESS
    parser.add_argument("--workers", metavar="W", default=s,
                        help="CPUs of the local Ray cluster started when no --address is given "
                        "(default: this machine's CPUs)")
    parser.add_argument("--address", metavar="HOST:PORT", default=s,
                        help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--results", metavar="DIR", type=Path, default=s,
                        help=f"results directory, one file per finished task "
                        f"(default {DEFAULT_RESULTS})")
    parser.add_argument("--chunk", metavar="K", default=s,
                        help="items (programs, cases) per task (default: about 4 tasks per CPU)")
    parser.add_argument("--json", action="store_true", default=s,
                        help="print the merged result as JSON")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "campaign",
        help="run conform, conform --random, explore or kvm storm over a Ray cluster",
        description="Split the work into tasks by seed range, case chunk or profile, run them on "
        "a Ray cluster (a local one unless --address is given; needs pip install "
        "'apiclab[campaign]'), store each finished task in the results directory and merge "
        "them into one result keyed by host kind. Exit 0 when every task finished, 1 when some "
        "did not (continue with --resume DIR), 2 on bad input.",
    )
    p.add_argument("--resume", metavar="DIR", type=Path,
                   help="continue the campaign stored in DIR (after its driver died)")
    _common(p)
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    r = kinds.add_parser(
        "random", help="conform --random: random programs, model as referee",
        description="conform --random split into ranges of the seed's program stream: the model "
        "once anywhere, or beside the real backends on a node of every host kind; the first "
        "disagreement of each kind is shrunk where it was seen. Same programs and counts as "
        "conform --random with the same seed.")
    r.add_argument("--programs", metavar="N", required=True, help="how many programs")
    r.add_argument("--seed", metavar="S", default="0", help="seed of the stream (default 0)")
    r.add_argument("--backends", metavar="LIST", default=",".join(BACKEND_NAMES),
                   help=f"comma-separated subset of {','.join(BACKEND_NAMES)} (default: all)")
    _common(r)
    s = kinds.add_parser(
        "suite", help="conform: the suite on every host kind's backends",
        description="The conformance suite in chunks of cases: the model once, the real backends "
        "on a node of every host kind; one matrix with a column per backend and host kind, each "
        "difference with the node that showed it and its evidence.")
    s.add_argument("--backends", metavar="LIST", default=",".join(BACKEND_NAMES),
                   help=f"comma-separated subset of {','.join(BACKEND_NAMES)} (default: all)")
    s.add_argument("--cases", metavar="DIR", action="append", type=Path,
                   help="a directory of case TOML files (repeatable); default: the built-in suite")
    s.add_argument("--only", metavar="NAME", action="append", help="only this case (repeatable)")
    _common(s)
    e = kinds.add_parser(
        "explore", help="explore: property search over profiles and seeds",
        description="The model's property search for every profile and APICv setting: one task "
        "for the exhaustive phase up to the bound, one per seed for the random phase; one row "
        "per profile and setting with its first counterexample.")
    e.add_argument("--property", metavar="P", required=True,
                   help="a built-in property, or module:function importable on every node")
    e.add_argument("--profiles", metavar="LIST", default="all",
                   help="comma-separated profiles, or all (default)")
    e.add_argument("--apicv", metavar="on,off", default="on", help="on, off or on,off")
    e.add_argument("--scenario", metavar="S", help="scenario family (default: the property's)")
    e.add_argument("--bound", metavar="K", default="4", help="exhaustive bound (default 4)")
    e.add_argument("--seeds", metavar="A:B", default="0:8",
                   help="seeds A..B-1 of the random phase, one task each (default 0:8)")
    e.add_argument("--random-runs", metavar="N", default="200",
                   help="random runs per seed (default 200)")
    e.add_argument("--budget", metavar="SECONDS", default="50",
                   help="wall-clock budget per task (default 50)")
    _common(e)
    k = kinds.add_parser(
        "storm", help="kvm storm: the reboot storm on every host kind's real KVM",
        description="The seed's reboot storm (apiclab kvm storm) on a node of every host kind "
        "with a usable /dev/kvm, each beside the model under the profile matching that host; "
        "one row per host kind with both sides' outcomes and every deviation with its node.")
    k.add_argument("--reboots", metavar="N", default="1000", help="reboots a storm (default 1000)")
    k.add_argument("--pending", metavar="VEC", action="append", default=[],
                   help="a vector pending at the reset (repeatable; e.g. 0xe1)")
    k.add_argument("--wait-ms", metavar="MS", default="50",
                   help="the phase-0 clock wait's deadline (default 50)")
    k.add_argument("--repeat", metavar="R", default="1", help="storms per host kind (default 1)")
    _common(k)
    p.set_defaults(func=run)


def _int(text: str, flag: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected an integer ≥ {low}") from None
    if value < low:
        raise UserError(f"{flag} {text!r}: expected an integer ≥ {low}")
    return value


def _random_params(args: argparse.Namespace) -> dict[str, Any]:
    names = parse_backend_list(args.backends)
    if "model" not in names:
        raise UserError("--backends: the model is the referee of random programs and must run")
    return {"programs": _int(args.programs, "--programs", 1),
            "seed": _int(args.seed, "--seed", 0), "backends": names}


def _suite_params(args: argparse.Namespace) -> dict[str, Any]:
    from apiclab.conform.case import builtin_dir, load_dir

    dirs = args.cases or [builtin_dir()]
    cases = [c for d in dirs for c in load_dir(d)]
    if args.only:
        unknown = set(args.only) - {c.name for c in cases}
        if unknown:
            raise UserError(f"--only: no case named {sorted(unknown)[0]!r}")
        cases = [c for c in cases if c.name in set(args.only)]
    # the case files travel in the tasks, so nodes need no copy of the directories
    return {"backends": parse_backend_list(args.backends),
            "cases": [{"name": c.name, "path": c.path, "text": Path(c.path).read_text()}
                      for c in cases]}


def _explore_params(args: argparse.Namespace) -> dict[str, Any]:
    from apiclab.explore.families import get_family
    from apiclab.explore.properties import BUILTIN, get_property
    from apiclab.hypervisor.profiles import PROFILES

    if args.property not in BUILTIN and (":" not in args.property
                                         or args.property.split(":")[0].endswith(".py")):
        raise UserError(f"--property {args.property!r}: a campaign needs a built-in property "
                        f"({', '.join(BUILTIN)}) or module:function importable on every node")
    prop = get_property(args.property)
    if args.scenario:
        get_family(args.scenario)
    profiles = list(PROFILES) if args.profiles == "all" else \
        [p.strip() for p in args.profiles.split(",") if p.strip()]
    for name in profiles or [""]:
        if name not in PROFILES:
            raise UserError(f"--profiles: unknown profile {name!r}; known: {', '.join(PROFILES)}")
    apicv = {"on": [True], "off": [False], "on,off": [True, False], "off,on": [False, True]}
    if args.apicv not in apicv:
        raise UserError(f"--apicv {args.apicv!r}: expected on, off or on,off")
    first, sep, last = args.seeds.partition(":")
    seeds = (_int(first, "--seeds", 0), _int(last, "--seeds", 0)) if sep else (-1, -1)
    if seeds[0] < 0 or seeds[1] < seeds[0]:
        raise UserError(f"--seeds {args.seeds!r}: expected A:B with 0 ≤ A ≤ B")
    try:
        budget = float(args.budget)
    except ValueError:
        budget = -1.0
    if not budget > 0:
        raise UserError(f"--budget {args.budget!r}: expected a positive number of seconds")
    return {"property": args.property, "scenario": args.scenario or prop.family,
            "profiles": profiles, "apicv": apicv[args.apicv],
            "bound": _int(args.bound, "--bound", 0), "seeds": list(seeds),
            "random_runs": _int(args.random_runs, "--random-runs", 0), "budget": budget}


def _storm_params(args: argparse.Namespace) -> dict[str, Any]:
    from apiclab.cli.kvm_storm_cmd import MAX_REBOOTS

    reboots = _int(args.reboots, "--reboots", 1)
    if reboots > MAX_REBOOTS:
        raise UserError(f"--reboots {reboots}: expected 1 to {MAX_REBOOTS}")
    wait_ms = _int(args.wait_ms, "--wait-ms", 1)
    if wait_ms > 60_000:
        raise UserError(f"--wait-ms {wait_ms}: expected 1 to 60000 milliseconds")
    pending = set()
    for text in args.pending:
        try:
            vector = int(text, 0)
        except ValueError:
            raise UserError(f"--pending {text!r}: expected a vector such as 0xe1") from None
        if not 0x10 <= vector <= 0xFF or vector == 0xD1:
            raise UserError(f"--pending {text}: a vector 0x10-0xff other than the clock's 0xd1")
        pending.add(vector)
    return {"reboots": reboots, "pending": sorted(pending), "wait_ms": wait_ms,
            "repeat": _int(args.repeat, "--repeat", 1)}


PARAMS = {"random": _random_params, "suite": _suite_params, "explore": _explore_params,
          "storm": _storm_params}


def _size(kind: str, params: dict[str, Any]) -> int:
    """How many items a campaign splits into chunks (an explore task is one search, a storm
    task one storm)."""
    sizes = {"random": int(params.get("programs", 1)), "suite": len(params.get("cases", ()))}
    return sizes.get(kind, 1)


def run(args: argparse.Namespace) -> int:
    from apiclab.campaign import ray_driver as rd
    from apiclab.campaign.kinds import KINDS

    workers = _int(str(getattr(args, "workers", os.cpu_count() or 1)), "--workers", 1)
    address = getattr(args, "address", None)
    if args.resume is not None:
        if args.kind:
            raise UserError("--resume DIR continues the campaign stored there; give no KIND")
        store = ResultsDir(args.resume)
        kind, params, _, tasks = store.load()
    elif not args.kind:
        raise UserError("campaign: give a KIND (random, suite, explore, storm) or --resume DIR")
    else:
        kind = args.kind
        params = PARAMS[kind](args)
        store = ResultsDir(getattr(args, "results", DEFAULT_RESULTS))
        if store.exists():
            raise UserError(f"--results {store.root}: already holds a campaign; continue it with "
                            f"--resume {store.root}, or choose another directory")
        chunk = getattr(args, "chunk", None)
        if chunk is not None:
            params["chunk"] = _int(chunk, "--chunk", 1)
    rd.import_ray()  # before anything is written: without Ray, say how to get it
    progress = _Progress()
    # Ray's driver prints cluster notices ("a worker died ...") on standard output, from a thread
    # of its own; they go to standard error here, so that standard output is only the result
    with contextlib.redirect_stdout(sys.stderr), rd.Cluster(address, workers) as cluster:
        nodes = rd.discover(cluster)
        hosts = rd.host_kinds(nodes)
        if args.resume is not None:
            store.save_hosts(hosts)
        else:
            params.setdefault("chunk", default_chunk(_size(kind, params), cluster.cpus()))
            tasks = KINDS[kind].plan(params, hosts)
            store.create(kind, params, hosts, tasks)
        try:
            doc, outcome = rd.run_campaign(store, cluster, nodes, kind, params, tasks,
                                           progress.update)
        except (KeyboardInterrupt, interrupts.Terminated):
            # the Ray cluster is shut down on the way out (if this run started it); `apiclab`
            # then reports the signal with its exit status
            progress.close()
            print(f"apiclab campaign: the finished tasks are in {store.root}; continue with: "
                  f"apiclab campaign --resume {store.root}", file=sys.stderr)
            raise
        finally:
            progress.close()
    doc = {"kind": kind, "results": str(store.root), **doc}
    if not outcome.failed:
        store.save_result(doc)
    if getattr(args, "json", False):
        print(dumps(doc))
    else:
        print(KINDS[kind].text(doc))
        print(f"results: {store.root} ({doc['tasks']['done']}/{doc['tasks']['planned']} tasks, "
              f"{doc['tasks']['run_now']} run now, in {doc['wall_seconds']} s)")
    for task_id, why in sorted(outcome.failed.items()):
        print(f"apiclab campaign: task {task_id} did not finish: {why}", file=sys.stderr)
    if outcome.failed:
        print(f"apiclab campaign: continue with: apiclab campaign --resume {store.root}",
              file=sys.stderr)
        return 1
    return 0


class _Progress:
    """Tasks done, and by which node, on one line of standard error, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.width = 0

    def update(self, done: int, total: int, per_node: Mapping[str, int]) -> None:
        if not self.enabled:
            return
        nodes = ", ".join(f"{n} {c}" for n, c in sorted(per_node.items()))
        line = f"campaign: {done}/{total} tasks" + (f" ({nodes})" if nodes else "")
        self.width = max(self.width, len(line))
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
