"""`campaign suite`: the conformance suite (`apiclab conform`) on every host kind's real backends.

The model runs the cases once, on any node; each host kind runs them on the real backends it has
(KVM, QEMU, Bochs), on one of its nodes, in chunks of cases. The case files travel inside the task
(their TOML text), so a node needs no copy of the driver's `--cases` directories. The merged
matrix has one column per backend and host kind (`kvm@6.1.0-1a2b3c4d`); each difference names the
node that showed it and carries that run's evidence (KVM's tracepoints, the emulator's log).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from apiclab.campaign.nodes import has_backend
from apiclab.campaign.random_kind import ANY, _why_not
from apiclab.campaign.tasks import Hosts, Results, Task, chunks


def column(backend: str, host: str | None) -> str:
    return backend if host in (None, ANY) else f"{backend}@{host}"


class SuiteKind:
    name = "suite"

    def plan(self, params: Mapping[str, Any], hosts: Hosts) -> list[Task]:
        cases = params["cases"]
        targets: list[tuple[str | None, list[str]]] = []
        if "model" in params["backends"]:
            targets.append((None, ["model"]))
        reals = [b for b in params["backends"] if b != "model"]
        for kind, desc in sorted(hosts.items()):
            present = [b for b in reals if has_backend(desc, b)]
            if present:
                targets.append((kind, present))
        return [
            Task(f"suite-{host or ANY}-{a:05d}-{b:05d}", self.name,
                 {"start": a, "stop": b, "cases": cases[a:b], "backends": present},
                 host, {"kvm": 1.0} if "kvm" in present else {})
            for host, present in targets
            for a, b in chunks(len(cases), int(params["chunk"]))
        ]

    def run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from apiclab.conform.backends import make_backend
        from apiclab.conform.case import case_from_dict
        from apiclab.conform.report import to_json
        from apiclab.conform.runner import run_suite

        cases = [case_from_dict(tomllib.loads(c["text"]), c["path"]) for c in params["cases"]]
        backends = {name: make_backend(name) for name in params["backends"]}
        doc = to_json(run_suite(cases, backends))
        return {"start": params["start"], "stop": params["stop"], **doc}

    def followups(self, params: Mapping[str, Any], tasks: list[Task],
                  results: Results) -> list[Task]:
        return []

    def merge(self, params: Mapping[str, Any], tasks: list[Task], results: Results,
              hosts: Hosts) -> dict[str, Any]:
        rows: list[dict[str, Any]] = [
            {"case": c["name"], "file": c["path"], "results": {}, "not_run": {},
             "differences": []}
            for c in params["cases"]
        ]
        columns: dict[str, dict[str, Any]] = {}
        for task in sorted(tasks, key=lambda t: (t.host or "", t.params["start"])):
            r = results.get(task.id)
            if r is None:
                continue
            for name, avail in r["backends"].items():
                columns[column(name, task.host)] = {"host": task.host or ANY, **avail}
            for offset, case in enumerate(r["cases"]):
                row = rows[int(r["start"]) + offset]
                row["sdm"] = case["sdm"]
                for name, outcome in case["results"].items():
                    row["results"][column(name, task.host)] = outcome
                for name, reason in case["not_run"].items():
                    row["not_run"][column(name, task.host)] = reason
                for diff in case["differences"]:
                    row["differences"].append({**diff, "column": column(diff["backend"],
                                                                         task.host),
                                               "host": task.host or ANY, "node": r.get("node")})
        totals = {col: {k: sum(row["results"].get(col) == k for row in rows)
                        for k in ("agrees", "differs", "not-run")} for col in columns}
        expected_cells = len(rows) * len(columns)
        wanted = [b for b in params["backends"] if b != "model"]
        return {
            "cases": len(rows),
            "complete": all(t.id in results for t in tasks)
            and sum(len(row["results"]) for row in rows) == expected_cells,
            "columns": columns,
            "totals": totals,
            "differences": sum(len(row["differences"]) for row in rows),
            "not_run": {b: _why_not(b, hosts) for b in wanted
                        if not any(has_backend(d, b) for d in hosts.values())},
            "matrix": rows,
        }

    def text(self, doc: Mapping[str, Any]) -> str:
        cols = list(doc["columns"])
        width = max([len(r["case"]) for r in doc["matrix"]] + [4])
        lines = ["columns:"] + [f"  {c}: {v.get('version') or 'not run: ' + str(v.get('reason'))}"
                                for c, v in doc["columns"].items()]
        widths = {c: max(8, len(c)) for c in cols}
        head = f"{'case':<{width}}  " + "  ".join(f"{c:<{widths[c]}}" for c in cols)
        lines += ["", head, "-" * len(head)]
        for row in doc["matrix"]:
            cells = "  ".join(f"{row['results'].get(c, '?'):<{widths[c]}}" for c in cols)
            lines.append(f"{row['case']:<{width}}  {cells}")
        lines.append("")
        lines += [f"{c}: {t['agrees']} agree, {t['differs']} differ, {t['not-run']} not run"
                  for c, t in doc["totals"].items()]
        for row in doc["matrix"]:
            for d in row["differences"]:
                lines.append(f"{row['case']} differs on {d['column']} (node {d['node']}) at "
                             f"event {d.get('index')}")
        for name, reason in doc["not_run"].items():
            lines.append(f"{name}: not run on any node: {reason}")
        if not doc["complete"]:
            lines.append("INCOMPLETE: some tasks did not finish; continue with --resume")
        return "\n".join(lines)
