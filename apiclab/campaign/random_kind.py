"""`campaign random`: `conform --random` split into index ranges of the seed's program stream.

A chunk [a, b) runs `apiclab.conform.differential.campaign` with `first=a`, the very function the
single run calls with `first=0`, and program i depends only on (seed, i): the chunks meet exactly
the single run's programs, and their counts add up to its counts whatever the split. The model's
events of every program are folded into an order-free fingerprint (XOR of per-program hashes that
include the index), so the merged model result can be compared across worker counts and with the
run without Ray. The first disagreement of each kind, per host kind, is shrunk afterwards by a
task on that host kind, as the single run shrinks its first one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from apiclab.campaign.nodes import has_backend
from apiclab.campaign.tasks import Hosts, Results, Task, chunks

ANY = "any"  # the target name of model-only work, which any node may run
Events = list[dict[str, Any]]


def program_hash(index: int, events: Events) -> int:
    text = json.dumps([index, events], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


def fingerprint_of(hashes: int) -> str:
    return f"{hashes:032x}"


def signature_id(signature: list[str]) -> str:
    return hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:10]


class RandomKind:
    name = "random"

    def plan(self, params: Mapping[str, Any], hosts: Hosts) -> list[Task]:
        reals = [b for b in params["backends"] if b != "model"]
        targets: list[tuple[str | None, list[str]]] = []
        for kind, desc in sorted(hosts.items()):
            present = [b for b in reals if has_backend(desc, b)]
            if present:
                targets.append((kind, present))
        if not targets:
            targets = [(None, [])]  # only the model runs: once, anywhere
        tasks = []
        for host, present in targets:
            for a, b in chunks(int(params["programs"]), int(params["chunk"])):
                tasks.append(Task(
                    f"random-{host or ANY}-{a:09d}-{b:09d}", self.name,
                    {"op": "chunk", "seed": params["seed"], "start": a, "stop": b,
                     "backends": ["model", *present]},
                    host, {"kvm": 1.0} if "kvm" in present else {},
                ))
        return tasks

    def run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if params["op"] == "shrink":
            return _shrink(params)
        return _chunk(params)

    def followups(self, params: Mapping[str, Any], tasks: list[Task],
                  results: Results) -> list[Task]:
        """One shrink per (host kind, disagreement kind): of its first program, as the single
        run shrinks the first disagreement of each kind."""
        first: dict[tuple[str, tuple[str, ...]], tuple[int, str]] = {}
        for task in tasks:
            if task.kind != self.name or task.params["op"] != "chunk":
                continue
            for d in results[task.id]["found"]:
                key = (task.host or ANY, tuple(d["signature"]))
                if key not in first or d["index"] < first[key][0]:
                    first[key] = (d["index"], d["backend"])
        out = []
        for (host, sig), (index, backend) in sorted(first.items()):
            out.append(Task(
                f"shrink-{host}-{signature_id(list(sig))}", self.name,
                {"op": "shrink", "seed": params["seed"], "index": index, "backend": backend,
                 "signature": list(sig)},
                None if host == ANY else host, {"kvm": 1.0} if backend == "kvm" else {},
            ))
        return out

    def merge(self, params: Mapping[str, Any], tasks: list[Task], results: Results,
              hosts: Hosts) -> dict[str, Any]:
        n = int(params["programs"])
        by_host: dict[str, list[Task]] = {}
        shrinks: dict[tuple[str, tuple[str, ...]], Mapping[str, Any]] = {}
        for task in tasks:
            if task.id not in results:
                continue
            if task.params["op"] == "chunk":
                by_host.setdefault(task.host or ANY, []).append(task)
            else:
                shrinks[(task.host or ANY, tuple(task.params["signature"]))] = results[task.id]
        per_host = {host: _merge_host(host, sorted(ts, key=lambda t: t.params["start"]),
                                      results, shrinks, n)
                    for host, ts in sorted(by_host.items())}
        planned = sum(1 for t in tasks if t.params["op"] == "chunk")
        done = sum(len(ts) for ts in by_host.values())
        prints = sorted({h["model_fingerprint"] for h in per_host.values()})
        wanted = [b for b in params["backends"] if b != "model"]
        return {
            "programs": n,
            "seed": params["seed"],
            "complete": done == planned and all(h["complete"] for h in per_host.values()),
            "chunks": {"planned": planned, "done": done, "size": params["chunk"]},
            "backends": _columns(per_host),
            "not_run": {b: _why_not(b, hosts) for b in wanted
                        if not any(has_backend(d, b) for d in hosts.values())},
            "disagreements": sum(h["disagreements"] for h in per_host.values()),
            "kinds": [k for h in per_host.values() for k in h["kinds"]],
            "model_fingerprint": prints[0] if len(prints) == 1 else prints,
            "hosts": per_host,
        }

    def text(self, doc: Mapping[str, Any]) -> str:
        lines = [f"{doc['programs']} random programs (seed {doc['seed']}) in "
                 f"{doc['chunks']['done']}/{doc['chunks']['planned']} chunks of "
                 f"{doc['chunks']['size']}" + ("" if doc["complete"] else " (INCOMPLETE)")]
        width = max([len(name) for name in (*doc["backends"], *doc["not_run"])] + [6])
        for name, s in doc["backends"].items():
            line = f"  {name:<{width}} {s['programs']} programs"
            if not name.startswith("model"):
                line += f"; agrees with the model on {s['agree']}, disagrees on {s['disagree']}"
            if s["errors"]:
                line += f", {s['errors']} runs failed (first: {s['first_error'][:200]})"
            if s.get("not_run"):
                line += f"; {s['not_run']} not run (first: {s['first_not_run'][:200]})"
            lines.append(line)
        for name, reason in doc["not_run"].items():
            lines.append(f"  {name:<{width}} not run on any node: {reason}")
        for k in doc["kinds"]:
            backend, model_kind, real_kind, fields = k["signature"]
            lines.append(f"disagreement on {backend}@{k['host']} ({k['count']} programs, first "
                         f"#{k['first_program']} on node {k['node']}): model shows {model_kind}, "
                         f"{backend} shows {real_kind}" + (f" (fields {fields})" if fields else "")
                         + (f"; shrunk to {k['steps']} steps: {k['candidate']}"
                            if k.get("steps") is not None else "; not shrunk yet"))
        lines.append(f"model fingerprint {doc['model_fingerprint']}")
        return "\n".join(lines)


def _chunk(params: Mapping[str, Any]) -> dict[str, Any]:
    from apiclab.conform.backends import make_backend
    from apiclab.conform.differential import campaign

    backends = {name: make_backend(name) for name in params["backends"]}
    model = backends.pop("model")
    reals, not_run = {}, {}
    for name, backend in backends.items():
        avail = backend.availability()
        if avail.available:
            reals[name] = backend
        else:
            not_run[name] = avail.detail
    hashes = 0

    def observe(index: int, events: Events) -> None:
        nonlocal hashes
        hashes ^= program_hash(index, events)

    start, stop = int(params["start"]), int(params["stop"])
    stats, found, wall = campaign(stop - start, int(params["seed"]), model, reals, first=start,
                                  observe=observe)
    shown: set[tuple[str, ...]] = set()
    out = []
    for d in found:
        row: dict[str, Any] = {"index": d.index, "backend": d.backend,
                               "signature": list(d.signature), "at": d.at}
        if d.signature not in shown:  # the evidence of the chunk's first of each kind
            shown.add(d.signature)
            row.update(model_events=d.model_events, backend_events=d.backend_events)
        out.append(row)
    return {"start": start, "stop": stop, "stats": {k: asdict(v) for k, v in stats.items()},
            "found": out, "fingerprint": fingerprint_of(hashes), "not_run": not_run,
            "seconds": wall}


def _shrink(params: Mapping[str, Any]) -> dict[str, Any]:
    from apiclab.conform.backends import make_backend
    from apiclab.conform.candidate import candidate_toml
    from apiclab.conform.differential import Disagreement, events_of, shrink
    from apiclab.conform.generate import random_program

    seed, index, name = int(params["seed"]), int(params["index"]), str(params["backend"])
    model, real = make_backend("model"), make_backend(name)
    program, moves, handlers = random_program(seed, index)
    d = Disagreement(index, name, tuple(params["signature"]), moves, handlers,
                     events_of(model, program), events_of(real, program), 0,
                     mode=program.mode, cpus=program.cpus)
    shrink(d, model, real)
    assert d.shrunk is not None
    label = f"random-{seed}-{index}-{name}"
    # the driver writes `files` into the results directory and records where (`saved`)
    return {"name": label, "steps": len(d.shrunk.steps),
            "files": {f"{label}.toml": candidate_toml(label, name, seed, index, d.shrunk,
                                                      d.shrunk_model, d.shrunk_backend)}}


def _merge_host(host: str, tasks: list[Task], results: Results,
                shrinks: Mapping[tuple[str, tuple[str, ...]], Mapping[str, Any]],
                n: int) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = {}
    hashes = 0
    found: list[tuple[Mapping[str, Any], str]] = []
    covered = 0
    nodes: dict[str, int] = {}
    for task in tasks:  # in index order, so "first error" and "first program" are the first
        r = results[task.id]
        covered += int(r["stop"]) - int(r["start"])
        node = str(r.get("node", "?"))
        nodes[node] = nodes.get(node, 0) + 1
        hashes ^= int(r["fingerprint"], 16)
        for name, s in r["stats"].items():
            into = stats.setdefault(name, {"programs": 0, "seconds": 0.0, "agree": 0,
                                           "disagree": 0, "errors": 0, "first_error": "",
                                           "not_run": 0, "first_not_run": ""})
            for key in ("programs", "seconds", "agree", "disagree", "errors", "not_run"):
                into[key] += s.get(key, 0)
            into["first_error"] = into["first_error"] or s["first_error"]
            into["first_not_run"] = into["first_not_run"] or s.get("first_not_run", "")
        found += [(d, node) for d in r["found"]]
    kinds: dict[tuple[str, ...], dict[str, Any]] = {}
    for d, node in found:
        sig = tuple(d["signature"])
        if sig not in kinds:
            shrunk = shrinks.get((host, sig), {})
            kinds[sig] = {"host": host, "backend": d["backend"], "signature": list(sig),
                          "first_program": d["index"], "count": 0, "node": node,
                          "evidence": {"at": d["at"], "model_events": d.get("model_events"),
                                       "backend_events": d.get("backend_events")},
                          "steps": shrunk.get("steps"),
                          "candidate": (shrunk.get("saved") or [None])[0]}
        kinds[sig]["count"] += 1
    for s in stats.values():
        s["seconds"] = round(s["seconds"], 2)
        s["programs_per_second"] = round(s["programs"] / s["seconds"], 1) if s["seconds"] else 0.0
    return {"complete": covered == n, "programs": covered, "backends": stats,
            "disagreements": len(found), "kinds": list(kinds.values()),
            "model_fingerprint": fingerprint_of(hashes), "tasks_per_node": nodes}


def _columns(per_host: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One column per backend and host kind (`kvm@6.1.0-1a2b3c4d`); the model once, from the
    first host kind (it ran the same programs everywhere, as the fingerprints show)."""
    out: dict[str, Any] = {}
    for host, h in per_host.items():
        for name, s in h["backends"].items():
            if name == "model":
                out.setdefault("model", s)
            else:
                out[f"{name}@{host}"] = s
    return out


def _why_not(backend: str, hosts: Hosts) -> str:
    reasons = sorted({str((d.get("not_available") or {}).get(backend, "not reported"))
                      for d in hosts.values()})
    return "; ".join(reasons) or "no nodes"
