"""`campaign explore`: the model's property search (`apiclab explore`) over profiles, APICv
settings and seed ranges, on any node (it is pure model work).

Per (profile, APICv) one task runs the exhaustive phase up to the bound; every seed of the range
is a task of its own that runs the random phase from that seed (with bound 0, the exhaustive phase
is the one all-default run). A search is a pure function of its arguments (the wall-clock budget
only stops it early, and says so), so the merged matrix is the same however the tasks were
spread. The counterexample reported per row is the exhaustive phase's, else the lowest seed's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiclab.campaign.tasks import Hosts, Results, Task


class ExploreKind:
    name = "explore"

    def plan(self, params: Mapping[str, Any], hosts: Hosts) -> list[Task]:
        tasks = []
        first, last = params["seeds"]
        for profile in params["profiles"]:
            for apicv in params["apicv"]:
                common = {"property": params["property"], "scenario": params["scenario"],
                          "profile": profile, "apicv": apicv, "budget": params["budget"]}
                row = f"{profile}-apicv{'on' if apicv else 'off'}"
                tasks.append(Task(f"explore-{row}-exhaustive", self.name,
                                  {**common, "bound": params["bound"], "seed": 0,
                                   "random_runs": 0}))
                tasks += [Task(f"explore-{row}-seed{s:09d}", self.name,
                               {**common, "bound": 0, "seed": s,
                                "random_runs": params["random_runs"]})
                          for s in range(first, last)]
        return tasks

    def run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from apiclab.explore.explain import explain
        from apiclab.explore.families import get_family
        from apiclab.explore.properties import get_property
        from apiclab.explore.search import Executor, search
        from apiclab.hypervisor.profiles import PROFILES

        prop = get_property(params["property"])
        family = get_family(params["scenario"] or prop.family)
        executor = Executor(family, prop, PROFILES[params["profile"]], bool(params["apicv"]))
        result = search(executor, bound=int(params["bound"]), seed=int(params["seed"]),
                        random_runs=int(params["random_runs"]), budget=float(params["budget"]))
        cov = result.coverage
        out: dict[str, Any] = {
            "violation": result.counterexample is not None, "runs": cov.runs,
            "states": cov.states, "exhaustive_complete": cov.exhaustive_complete,
            "budget_exhausted": cov.budget_exhausted, "seconds": round(cov.seconds, 3),
        }
        ce = result.counterexample
        if ce is not None:
            assert ce.minimal.violation is not None
            out["choices"] = ce.minimal.choices
            out["explanation"] = explain(ce.minimal.events, prop, ce.minimal.violation)
        return out

    def followups(self, params: Mapping[str, Any], tasks: list[Task],
                  results: Results) -> list[Task]:
        return []

    def merge(self, params: Mapping[str, Any], tasks: list[Task], results: Results,
              hosts: Hosts) -> dict[str, Any]:
        rows: dict[tuple[str, bool], dict[str, Any]] = {}
        # exhaustive first, then seeds in order: the first violation met is the one reported
        profiles, apicv = list(params["profiles"]), list(params["apicv"])
        order = sorted(tasks, key=lambda t: (profiles.index(t.params["profile"]),
                                             apicv.index(t.params["apicv"]),
                                             t.params["random_runs"] > 0, t.params["seed"]))
        for task in order:
            p = task.params
            row = rows.setdefault((p["profile"], p["apicv"]), {
                "profile": p["profile"], "apicv": p["apicv"], "violation": False,
                "counterexample": None, "runs": 0, "tasks": 0, "tasks_done": 0,
                "budget_exhausted": 0, "exhaustive_complete": False, "nodes": {},
            })
            row["tasks"] += 1
            r = results.get(task.id)
            if r is None:
                continue
            row["tasks_done"] += 1
            row["runs"] += r["runs"]
            row["budget_exhausted"] += bool(r["budget_exhausted"])
            if p["random_runs"] == 0:
                row["exhaustive_complete"] = r["exhaustive_complete"]
            node = str(r.get("node", "?"))
            row["nodes"][node] = row["nodes"].get(node, 0) + 1
            if r["violation"] and row["counterexample"] is None:
                row["violation"] = True
                row["counterexample"] = {
                    "found_by": "exhaustive" if p["random_runs"] == 0 else f"seed {p['seed']}",
                    "choices": r["choices"], "explanation": r["explanation"], "node": node}
        out = list(rows.values())
        return {"property": params["property"], "seeds": list(params["seeds"]),
                "bound": params["bound"], "random_runs": params["random_runs"],
                "complete": all(t.id in results for t in tasks),
                "violations": sum(r["violation"] for r in out), "rows": out}

    def text(self, doc: Mapping[str, Any]) -> str:
        a, b = doc["seeds"]
        lines = [f"property {doc['property']}: bound {doc['bound']}, seeds {a}..{b - 1} with "
                 f"{doc['random_runs']} random runs each"]
        for r in doc["rows"]:
            head = (f"  {r['profile']:<10} APICv {'on ' if r['apicv'] else 'off'} "
                    f"{r['runs']:>7} runs in {r['tasks_done']}/{r['tasks']} tasks: ")
            ce = r["counterexample"]
            if ce:
                lines.append(head + f"VIOLATED ({ce['found_by']}, node {ce['node']}): "
                             f"choices {ce['choices']}")
            else:
                lines.append(head + "no violation"
                             + (f" ({r['budget_exhausted']} tasks hit the budget)"
                                if r["budget_exhausted"] else ""))
        if not doc["complete"]:
            lines.append("INCOMPLETE: some tasks did not finish; continue with --resume")
        return "\n".join(lines)
