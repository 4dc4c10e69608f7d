"""`apiclab explore --exhaustive`: the state-graph search of apiclab.explore.graph, reported the
way a model checker reports (states, transitions, depth) with the shortest counterexample."""

from __future__ import annotations

import json
import sys
from typing import Any

from apiclab.errors import UserError
from apiclab.explore.explain import explain, format_chain
from apiclab.explore.graph import GraphResult, WorldFactory, explore_graph
from apiclab.explore.properties import Property
from apiclab.explore.scenarios.reboot_steps import RebootWorld
from apiclab.hypervisor.profiles import Profile

STEPWISE: dict[str, WorldFactory] = {"reboot": RebootWorld}


def run(family: str, prop: Property, profile: Profile, apicv: bool, *, budget: float,
        as_json: bool) -> int:
    factory = STEPWISE.get(family)
    if factory is None:
        raise UserError(f"--exhaustive: scenario family {family!r} has no state-graph form; "
                        f"families with one: {', '.join(STEPWISE)}")
    progress = _Progress()
    try:
        result = explore_graph(factory, prop, profile, apicv, family=family, budget=budget,
                               progress=progress.update)
    finally:
        progress.close()
    doc = result_json(result, prop)
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        _print(result, prop, doc)
    return 1 if result.counterexample is not None else 0


def result_json(result: GraphResult, prop: Property) -> dict[str, Any]:
    ce = result.counterexample
    counterexample = None
    if ce is not None:
        counterexample = {
            "choices": ce.choices, "steps": ce.steps, "path": ce.path,
            "explanation": explain(ce.events, prop, ce.violation),
        }
    return {
        "property": result.property, "profile": result.profile, "apicv": result.apicv,
        "scenario": result.family, "exhaustive": True,
        "violation": ce is not None,
        "proof": ce is None and result.complete,
        "counterexample": counterexample,
        "coverage": {
            "states": result.states, "transitions": result.transitions,
            "depth": result.depth, "max_steps": result.max_steps,
            "final_states": result.final_states, "subsumed": result.subsumed,
            "complete": result.complete, "budget_exhausted": result.budget_exhausted,
            "seconds": round(result.seconds, 3),
        },
    }


def coverage_line(result: GraphResult) -> str:
    what = ("every reachable state" if result.complete
            else "stopped at the first violation" if result.counterexample
            else "budget exhausted before the last state")
    return (f"{result.states} states, {result.transitions} transitions, depth {result.depth} "
            f"(non-default choices; {result.max_steps} steps), {result.final_states} final "
            f"states, {result.subsumed} revisits merged; {what}; {result.seconds:.2f} s")


def _print(result: GraphResult, prop: Property, doc: dict[str, Any]) -> None:
    apicv = "on" if result.apicv else "off"
    print(f"property {prop.name}: {prop.summary}")
    print(f"profile {result.profile}, APICv {apicv}, scenario {result.family}, exhaustive "
          "(state graph, breadth-first)")
    ce = result.counterexample
    if ce is None:
        verdict = ("no violation in any reachable state: the property holds in the model for "
                   "this family" if result.complete else "no violation found (incomplete)")
        print(f"\n{verdict}.\n{coverage_line(result)}")
        return
    print(f"\nVIOLATION: shortest counterexample, {len(ce.path)} steps, choices {ce.choices}:")
    for text in ce.steps:
        print(f"  - {text}")
    print("\nWhy:")
    print(format_chain(doc["counterexample"]["explanation"]))
    print(f"\n{coverage_line(result)}")


class _Progress:
    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def update(self, states: int, transitions: int, depth: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\rexplore --exhaustive: {states} states, {transitions} "
                             f"transitions, depth {depth}   ")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()
