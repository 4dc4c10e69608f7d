"""`apiclab explore`: find a run that breaks a property, shrink it, explain it — or say what was
covered. Exit 1 on a violation, 0 on none, 2 on bad input, so it can gate a CI."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from apiclab.cli.numbers import MAX_SEED, NumberError, parse_float_in, parse_int_in
from apiclab.engine.events import Choice
from apiclab.errors import UserError
from apiclab.explore.families import FAMILIES, get_family
from apiclab.explore.properties import BUILTIN, Property, get_property
from apiclab.hypervisor.profiles import PROFILES, get_profile, resolve
from apiclab.report import export

if TYPE_CHECKING:
    from apiclab.explore.catalogue import EntryResult
    from apiclab.explore.search import Executor, SearchResult

# The bounded search, the catalogue and the explanation are imported by the functions that use
# them: `explore --exhaustive` needs none but the explanation, and a process that proves or
# refutes in a fraction of a second should not spend a third of it importing.

DEFAULT_BOUND = 4
DEFAULT_BUDGET = 50.0
DEFAULT_RANDOM_RUNS = 500


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explore",
        help="search the model for a run that breaks a property; shrink and explain it",
        description="Enumerate the choices of a scenario family (vectors pending at a reset or "
        "snapshot, when it lands, clock source, timer mode, ...) up to a bound, then sample "
        "beyond it; report the minimal run that breaks the property with its explanation chain, "
        "or what was covered. Exit 1 on a violation, 0 on none, 2 on bad input.",
    )
    p.add_argument("--property", metavar="P",
                   help=f"{', '.join(BUILTIN)}, or module:function, or file.py[:function]. "
                   "A module or file is imported and run as Python with your rights: "
                   "give only code you trust")
    p.add_argument("--profile", metavar="X", help=f"one of {', '.join(PROFILES)}")
    p.add_argument("--apicv", default="on", metavar="on|off", help="APIC virtualization (default on)")
    p.add_argument("--scenario", metavar="S",
                   help=f"scenario family: {', '.join(FAMILIES)} (default: the property's)")
    p.add_argument("--bound", default=str(DEFAULT_BOUND), metavar="K",
                   help=f"exhaustive up to K non-default choices (default {DEFAULT_BOUND})")
    p.add_argument("--budget", default=str(DEFAULT_BUDGET), metavar="SECONDS",
                   help=f"stop searching after this wall time (default {DEFAULT_BUDGET:g})")
    p.add_argument("--seed", default="0", metavar="S", help="seed of the random phase (default 0)")
    p.add_argument("--random-runs", default=str(DEFAULT_RANDOM_RUNS), metavar="N",
                   help=f"random runs beyond the bound (default {DEFAULT_RANDOM_RUNS})")
    p.add_argument("--exhaustive", action="store_true",
                   help="explore the family as a graph of model states until no new state "
                   "remains (no bound): no violation is then a proof within the model")
    p.add_argument("--catalogue", action="store_true",
                   help="run the bug catalogue: each fix's buggy and fixed profile")
    p.add_argument("--list", action="store_true", help="list properties and scenario families")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    export.add_arguments(p)
    p.set_defaults(func=run)


# Ranges of the numeric flags: far beyond any useful search, small enough to end.
MAX_BOUND = 1_000
MAX_BUDGET_S = 7 * 24 * 3600.0
MAX_RANDOM_RUNS = 100_000_000


def _number(text: str, flag: str, kind: type[int] | type[float], low: float, high: float) -> Any:
    try:
        if kind is int:
            return parse_int_in(text, int(low), int(high))
        return parse_float_in(text, low, high)
    except NumberError as e:
        raise UserError(f"{flag}: {e}") from None


def run(args: argparse.Namespace) -> int:
    bound = _number(args.bound, "--bound", int, 0, MAX_BOUND)
    budget = _number(args.budget, "--budget", float, 0.001, MAX_BUDGET_S)
    seed = _number(args.seed, "--seed", int, 0, MAX_SEED)
    random_runs = _number(args.random_runs, "--random-runs", int, 0, MAX_RANDOM_RUNS)
    if args.apicv not in ("on", "off"):
        raise UserError(f"--apicv {args.apicv!r}: expected on or off")
    if args.list:
        return _list()
    progress = _Progress()
    if args.catalogue:
        from apiclab.explore.catalogue import CATALOGUE, run_entry

        results = [
            run_entry(e, bound=bound, seed=seed, random_runs=random_runs, budget=budget,
                      progress=progress.update)
            for e in CATALOGUE
        ]
        progress.close()
        _print_catalogue(results, as_json=args.json)
        return 0 if all(r.holds for r in results) else 1
    if not args.property or not args.profile:
        raise UserError("explore: give --property P and --profile X (or --catalogue, or --list)")
    try:
        profile, note = resolve(args.profile)
    except KeyError:
        raise UserError(f"--profile {args.profile!r}: unknown; known: {', '.join(PROFILES)}") from None
    if note:
        print(f"note: {note}", file=sys.stderr)
    prop = get_property(args.property)
    family = get_family(args.scenario or prop.family)
    drawn = export.wanted(args)
    if args.exhaustive:
        # imported only when asked: every apiclab command pays for what start-up imports
        from apiclab.cli import explore_exhaustive_cmd

        # a proof must reach the last state: without --budget, allow it ten minutes
        budget_given = args.budget != str(DEFAULT_BUDGET)
        return explore_exhaustive_cmd.run(family.name, prop, profile, args.apicv == "on",
                                          budget=budget if budget_given else 600.0,
                                          as_json=args.json)
    from apiclab.explore.search import Executor, search

    executor = Executor(family, prop, profile, args.apicv == "on")
    try:
        result = search(executor, bound=bound, seed=seed, random_runs=random_runs, budget=budget,
                        progress=progress.update)
    finally:
        progress.close()
    doc = _result_json(result, prop)
    if drawn:
        _export(args, executor, result, doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_result(result, prop, doc)
    return 1 if result.counterexample is not None else 0


def _fixed_profile(profile: str, prop: Property) -> str | None:
    """The profile with the fix: the catalogue's, for this property and profile; else the newest
    modelled KVM."""
    from apiclab.explore.catalogue import CATALOGUE

    for entry in CATALOGUE:
        if entry.buggy == profile and entry.property == prop.name:
            return entry.fixed
    newest = list(PROFILES)[-1]
    return newest if newest != profile else None


def _export(
    args: argparse.Namespace, executor: Executor, result: SearchResult, doc: dict[str, Any]
) -> None:
    from apiclab.explore.search import Executor
    from apiclab.guest.windows7 import Windows7Config
    from apiclab.report.stories import explore_stories, guest_vector_names

    config = Windows7Config()  # the explored families run Windows 7 with its defaults
    subtitle = f"property {result.property}, scenario {result.family}, APICv {args.apicv}"
    if result.counterexample is None:
        subtitle += ": no violation found, nothing to draw"
        export.export(args, [], title=f"apiclab explore: {result.profile}", subtitle=subtitle)
        return
    minimal = result.counterexample.minimal
    chain = doc["counterexample"]["explanation"]
    fixed = None
    fixed_name = _fixed_profile(result.profile, executor.prop)
    if fixed_name is not None:
        other = Executor(executor.family, executor.prop, PROFILES[fixed_name], executor.apicv)
        _, replayed = other.replay(list(minimal.choices))
        fixed = (fixed_name, replayed.events)
    stories = explore_stories(
        (result.profile, minimal.events, chain), fixed, minimal.choices, config.clock_vector
    )
    export.export(
        args, stories, title=f"apiclab explore: {result.property} on {result.profile}",
        subtitle=subtitle, vector_names=guest_vector_names(config),
    )


def _result_json(result: SearchResult, prop: Property) -> dict[str, Any]:
    from apiclab.explore.explain import explain

    cov = result.coverage
    counterexample = None
    if result.counterexample is not None:
        minimal = result.counterexample.minimal
        assert minimal.violation is not None
        counterexample = {
            "choices": minimal.choices,
            "explanation": explain(
                minimal.events, prop, minimal.violation, get_profile(result.profile)
            ),
        }
    return {
        "property": result.property,
        "profile": result.profile,
        "violation": counterexample is not None,
        "counterexample": counterexample,
        "coverage": {
            "runs": cov.runs, "states": cov.states, "bound": cov.bound,
            "seconds": round(cov.seconds, 3),
        },
    }


def _coverage_line(result: SearchResult) -> str:
    cov = result.coverage
    exhaustive = (
        f"all choice sequences with ≤{cov.bound} non-default choices"
        if cov.exhaustive_complete else f"bound {cov.bound} not exhausted"
    )
    text = (
        f"coverage: {_plural(cov.runs, 'run')} ({cov.exhaustive_runs} exhaustive: {exhaustive}; "
        f"{cov.random_runs} random, seed {result.seed}), {_plural(cov.states, 'distinct state')} "
        f"at checkpoints, bound {cov.bound}, {cov.seconds:.2f} s"
    )
    return text + (" — budget exhausted" if cov.budget_exhausted else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _print_result(result: SearchResult, prop: Property, doc: dict[str, Any]) -> None:
    apicv = "on" if result.apicv else "off"
    print(f"property {prop.name}: {prop.summary}")
    print(f"profile {result.profile}, APICv {apicv}, scenario {result.family}")
    ce = result.counterexample
    if ce is None:
        print(f"\nno violation.\n{_coverage_line(result)}")
        return
    minimal = ce.minimal
    shrunk = (
        f"shrunk in {ce.shrink_runs} runs to {minimal.choices}"
        if minimal.choices != ce.found.choices
        else f"already minimal ({ce.shrink_runs} simpler candidates pass)"
        if ce.shrink_runs
        else "already minimal (the simplest run of the family)"
    )
    print(
        f"\nVIOLATION after {_plural(ce.runs_to_first, 'run')} ({ce.seconds_to_first:.2f} s): "
        f"choices "
        f"{ce.found.choices}, {shrunk}:"
    )
    for event in minimal.events:
        if isinstance(event, Choice):
            print(f"  - {event.text}")
    print("\nWhy:")
    from apiclab.explore.explain import format_chain

    print(format_chain(doc["counterexample"]["explanation"]))
    print(f"\n{_coverage_line(result)}")


def _print_catalogue(results: list[EntryResult], *, as_json: bool) -> None:
    from apiclab.explore.catalogue import NOT_MODELLED

    if as_json:
        rows = []
        for r in results:
            e = r.entry
            rows.append({
                "commit": e.commit, "title": e.title, "symptom": e.symptom,
                "property": e.property, "scenario": e.family, "apicv": e.apicv,
                "buggy": {
                    "profile": e.buggy, "violation": r.buggy.counterexample is not None,
                    "choices": r.buggy.counterexample.minimal.choices
                    if r.buggy.counterexample else None,
                },
                "fixed": {
                    "profile": e.fixed, "violation": r.fixed.counterexample is not None,
                    "runs": r.fixed.coverage.runs, "states": r.fixed.coverage.states,
                },
                "holds": r.holds,
            })
        unmodelled = [
            {"commit": u.commit or None, "title": u.title, "symptom": u.symptom,
             "why_not": u.why_not}
            for u in NOT_MODELLED
        ]
        print(json.dumps({"catalogue": rows, "not_modelled": unmodelled}, indent=2))
        return
    print(
        f"{'commit':<26} {'property':<25} {'scenario':<21} {'APICv':<5} {'with the bug':<36} "
        "without it"
    )
    for r in results:
        e = r.entry
        ce = r.buggy.counterexample
        shown = str(ce.minimal.choices) if ce and ce.minimal.choices else "[] (simplest run)"
        before = f"{e.buggy}: " + (f"violated {shown}" if ce else "no violation!")
        after = f"{e.fixed}: " + (
            "violated!" if r.fixed.counterexample else f"clean ({r.fixed.coverage.runs} runs)"
        )
        print(
            f"{e.commit:<26} {e.property:<25} {e.family:<21} {'on' if e.apicv else 'off':<5} "
            f"{before:<36} {after}"
        )
    for r in results:
        print(f"\n{r.entry.commit} \"{r.entry.title}\"\n  symptom: {r.entry.symptom}")
    for u in NOT_MODELLED:
        print(f"\nnot modelled: {u.commit or '(commit id not found)'} \"{u.title}\"")
        print(f"  symptom: {u.symptom}\n  why not: {u.why_not}")


def _list() -> int:
    print("properties:")
    for p in BUILTIN.values():
        print(f"  {p.name:<22} {p.summary} (scenario {p.family})")
    print("scenario families:")
    for f in FAMILIES.values():
        print(f"  {f.name:<22} {f.summary}")
    return 0


class _Progress:
    """Runs so far on standard error, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def update(self, phase: str, runs: int, states: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\rexplore: {phase}, {runs} runs, {states} states   ")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()
