"""`campaign storm`: the seed's reboot storm (`apiclab kvm storm`) on the real KVM of every host
kind, each beside the model under the profile that matches that host.

A task is one whole storm on one node of a host kind (a storm is one VM rebooted in place, so it
is not split); `--repeat R` runs R storms per host kind, on its nodes in turn. The task runs the
very code of `apiclab kvm storm --json` and keeps its document, so the campaign reports what that
command reports, per host kind: outcomes on the host and in the model, and every deviation with
its evidence and the node that showed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiclab.campaign.nodes import has_backend
from apiclab.campaign.tasks import Hosts, Results, Task
from apiclab.errors import UserError


class StormKind:
    name = "storm"

    def plan(self, params: Mapping[str, Any], hosts: Hosts) -> list[Task]:
        kinds = [kind for kind, desc in sorted(hosts.items()) if has_backend(desc, "kvm")]
        if not kinds:
            raise UserError("campaign storm: no node of the cluster has a usable /dev/kvm")
        return [Task(f"storm-{kind}-{r:04d}", self.name, {**params, "repeat": r}, kind,
                     {"kvm": 1.0})
                for kind in kinds for r in range(int(params["repeat"]))]

    def run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        import json

        from apiclab.backends.kvm.storm_document import storm_document
        from apiclab.backends.kvm.storm_guest import DEFAULT_WAIT_MS
        from apiclab.backends.kvm.system import DEV_KVM

        wait_ms = params["wait_ms"] if params["wait_ms"] is not None else DEFAULT_WAIT_MS
        doc = storm_document(DEV_KVM, int(params["reboots"]), sorted(set(params["pending"])),
                             int(wait_ms), profile=params.get("profile"))
        return {"storm": json.loads(json.dumps(doc))}  # as `kvm storm --json` prints it

    def followups(self, params: Mapping[str, Any], tasks: list[Task],
                  results: Results) -> list[Task]:
        return []

    def merge(self, params: Mapping[str, Any], tasks: list[Task], results: Results,
              hosts: Hosts) -> dict[str, Any]:
        rows: dict[str, dict[str, Any]] = {}
        for task in sorted(tasks, key=lambda t: t.id):
            assert task.host is not None
            row = rows.setdefault(task.host, {
                "host": task.host, "nodes": list(hosts.get(task.host, {}).get("nodes", [])),
                "storms": 0, "storms_done": 0, "reboots": 0, "host_outcomes": {},
                "model_outcomes": {}, "model_profile": None, "deviating_reboots": 0,
                "deviations": [], "reboots_per_s": [],
            })
            row["storms"] += 1
            r = results.get(task.id)
            if r is None:
                continue
            doc = r["storm"]
            row["storms_done"] += 1
            row["reboots"] += doc["reboots"]
            row["reboots_per_s"].append(round(doc["reboots_per_s"], 1))
            row["model_profile"] = doc["model"]["profile"]
            row.update(kernel=doc["host"]["kernel"], module=doc["host"]["module"],
                       apicv=doc["host"]["apicv"]["available"])
            for side, key in (("host", "host_outcomes"), ("model", "model_outcomes")):
                for outcome, count in doc[side]["outcomes"].items():
                    row[key][outcome] = row[key].get(outcome, 0) + count
            row["deviating_reboots"] += doc["deviations"]["reboots"]
            row["deviations"] += [{**k, "node": r.get("node"), "storm": task.params["repeat"]}
                                  for k in doc["deviations"]["kinds"]]
        return {"reboots_per_storm": params["reboots"], "pending": params["pending"],
                "complete": all(t.id in results for t in tasks),
                "deviating_reboots": sum(r["deviating_reboots"] for r in rows.values()),
                "hosts": list(rows.values())}

    def text(self, doc: Mapping[str, Any]) -> str:
        pending = ", ".join(f"{v:#x}" for v in doc["pending"]) or "none"
        lines = [f"kvm storm on every host kind: {doc['reboots_per_storm']} reboots a storm, "
                 f"pending at the reset: {pending}"]
        for r in doc["hosts"]:
            lines.append(f"  {r['host']} ({', '.join(r['nodes'])}; {r.get('module')}, APICv "
                         f"{'yes' if r.get('apicv') else 'no'}): {r['storms_done']}/{r['storms']} "
                         f"storms, {r['reboots']} reboots; host {r['host_outcomes']}, model "
                         f"{r['model_profile']} {r['model_outcomes']}; "
                         f"{r['deviating_reboots']} reboots deviate")
            for d in r["deviations"][:5]:
                lines.append(f"    {d['reboots']} x on node {d['node']}: "
                             f"{d['evidence']['summary']}")
        if not doc["complete"]:
            lines.append("INCOMPLETE: some tasks did not finish; continue with --resume")
        return "\n".join(lines)
