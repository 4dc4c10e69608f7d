"""`apiclab reproduce`: the Windows 7 0x5C reboot BSOD, side by side across KVM profiles."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from apiclab.cli.numbers import MAX_SEED, int_in
from apiclab.cli.progress import Progress
from apiclab.errors import UserError
from apiclab.hypervisor.profiles import FIXED, PRE_FIX, PROFILES, get_profile, resolve
from apiclab.report import export
from apiclab.report.explain import explain_failure, format_chain
from apiclab.scenarios import scenario_file, win7_reboot
from apiclab.scenarios.scenario_file import Scenario
from apiclab.scenarios.win7_reboot import StormResult, run_storm

MAX_REBOOTS = 10_000_000


def register(sub: Any) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the Windows 7 0x5C reboot BSOD on the model",
        description="Run a storm of Windows 7 reboots on the model under each KVM profile and "
        "explain the first BSOD as a chain of register states.",
    )
    p.add_argument(
        "--scenario", default=win7_reboot.NAME, metavar="NAME|FILE.toml",
        help=f"a built-in scenario or a scenario file (default {win7_reboot.NAME}; "
        "see apiclab/scenarios/win7-reboot-0x5c.toml for the format)",
    )
    p.add_argument("--reboots", type=int_in(1, MAX_REBOOTS), default=1000,
                   help=f"reboots per profile, 1..{MAX_REBOOTS} (default 1000)")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=1, help="random seed (default 1)")
    p.add_argument(
        "--profile", action="append", metavar="NAME[:apicv-off]",
        help="profile to run, repeatable; add ':apicv-off' for APICv disabled "
        f"(default: {PRE_FIX}, {FIXED}, {PRE_FIX}:apicv-off)",
    )
    p.add_argument(
        "--guest", choices=("windows7", "linux"), default=None,
        help="guest model, overriding the scenario's (linux clears stale in-service vectors at "
        "APIC setup)",
    )
    p.add_argument(
        "--clock-source", choices=("hpet", "lapic-timer"), default=None,
        help="phase-0 clock source, overriding the scenario's",
    )
    p.add_argument(
        "--early-boot-eoi", action="store_true", default=None,
        help="let early-boot interrupt stubs EOI unexpected vectors (Windows 7's do not)",
    )
    p.add_argument(
        "--after-bsod", choices=("restart", "power-cycle"), default="restart",
        help="after a BSOD: restart on the same VM (Windows' automatic restart, default) or "
        "destroy and recreate the VM, to measure the odds per reboot of a healthy system",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    export.add_arguments(p)
    p.set_defaults(func=run)


def _parse_profiles(specs: list[str] | None) -> list[tuple[str, bool]]:
    if not specs:
        return [(PRE_FIX, True), (FIXED, True), (PRE_FIX, False)]
    out = []
    for spec in specs:
        name, _, flag = spec.partition(":")
        try:
            note = resolve(name)[1]
        except KeyError:
            raise UserError(
                f"--profile {spec}: unknown profile {name!r}; known: {', '.join(PROFILES)}"
            ) from None
        if note:
            print(f"note: {note}", file=sys.stderr)
        if flag not in ("", "apicv-off", "apicv-on"):
            raise UserError(f"--profile {spec}: unknown suffix {flag!r}; use ':apicv-off'")
        out.append((name, flag != "apicv-off"))
    return out


def _result_json(r: StormResult) -> dict[str, Any]:
    bugcheck = None
    if r.bugcheck is not None:
        code, params = r.bugcheck
        bugcheck = {"code": code, "params": list(params)}
    return {
        "profile": r.profile,
        "apicv": r.apicv,
        "reboots": r.reboots,
        "bsods": r.bsods,
        "rate": r.bsods / r.reboots if r.reboots else 0.0,
        "bsods_after_clean_boot": r.bsods_after_clean_boot,
        "reboots_after_clean_boot": r.clean_boot_reboots,
        "first_bsod_at_reboot": r.first_failure_index,
        "bugcheck": bugcheck,
        "explanation": explain_failure(r.first_failure, profile=get_profile(r.profile))
        if r.first_failure
        else [],
        "trace_sha256": r.digest,
    }


def run(args: argparse.Namespace) -> int:
    scenario = _with_flags(scenario_file.load(args.scenario), args)
    runs = _parse_profiles(args.profile)
    drawn = export.wanted(args)
    results = [_storm(args, scenario, name, apicv) for name, apicv in runs]
    rows = [_result_json(r) for r in results]
    if drawn:
        _export(args, scenario, results)
    if args.json:
        doc = {
            "scenario": scenario.name, "guest": scenario.guest, "seed": args.seed,
            "after_bsod": args.after_bsod, "results": rows,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"scenario {scenario.name}, guest {scenario.guest}, seed {args.seed}, "
        f"{args.reboots} reboots per profile, after a BSOD: {args.after_bsod}\n"
    )
    _print_table(rows)
    for row in rows:
        if row["explanation"]:
            _print_explanation(row)
    return 0


def _export(args: argparse.Namespace, scenario: Scenario, results: list[StormResult]) -> None:
    from apiclab.report.stories import guest_vector_names, reproduce_stories

    stories = reproduce_stories(results, scenario.windows7, scenario.tsc_hz)
    export.export(
        args, stories, title=f"apiclab reproduce: {scenario.name}",
        subtitle=f"guest {scenario.guest}, seed {args.seed}, {args.reboots} reboots per profile",
        vector_names=guest_vector_names(scenario.windows7),
    )


def _with_flags(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """Flags given on the command line override the scenario's values."""
    windows7 = scenario.windows7
    if args.clock_source is not None:
        windows7 = replace(windows7, clock_source=args.clock_source)
    if args.early_boot_eoi is not None:
        windows7 = replace(windows7, early_boot_eoi_unexpected=args.early_boot_eoi)
    return replace(scenario, windows7=windows7, guest=args.guest or scenario.guest)


def _storm(args: argparse.Namespace, scenario: Scenario, name: str, apicv: bool) -> StormResult:
    bar = Progress(f"{name}{'' if apicv else ' (APICv off)'}", args.reboots)
    try:
        return run_storm(
            get_profile(name), apicv=apicv, reboots=args.reboots, seed=args.seed,
            config=scenario.windows7, tsc_hz=scenario.tsc_hz, progress=bar.update,
            linux=scenario.linux if scenario.guest == "linux" else None,
            power_cycle_after_bsod=args.after_bsod == "power-cycle",
            device_vectors=scenario.device_vectors,
            tracing=args.json,  # only --json prints the trace digest; the table needs counts
        )
    finally:
        bar.close()


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"  {'profile':<10} {'APICv':<5} {'reboots':>7} {'BSODs':>6} {'rate':>6}   "
        f"{'from healthy':>12}   first BSOD   bugcheck"
    )
    for row in rows:
        bc = row["bugcheck"]
        code = f"{bc['code']:#x} ({', '.join(f'{p:#x}' for p in bc['params'])})" if bc else "-"
        first = row["first_bsod_at_reboot"]
        healthy = f"{row['bsods_after_clean_boot']}/{row['reboots_after_clean_boot']}"
        print(
            f"  {row['profile']:<10} {'on' if row['apicv'] else 'off':<5} {row['reboots']:>7} "
            f"{row['bsods']:>6} {row['rate']:>6.1%}   {healthy:>12}   "
            f"{('#' + str(first + 1)) if first is not None else '-':<10}   {code}"
        )
    print(
        "\n  'from healthy': reboots of a system that had booted fine, and how many of them failed."
    )


def _print_explanation(row: dict[str, Any]) -> None:
    print(
        f"\n{row['profile']} (APICv {'on' if row['apicv'] else 'off'}), first BSOD on reboot "
        f"#{row['first_bsod_at_reboot'] + 1}."
    )
    if row["bsods"] > row["bsods_after_clean_boot"]:
        print(
            "After a BSOD the clock vector is left pending in RVI while the guest bugchecks "
            "with interrupts off, so the automatic restart meets a stale RVI again: on this "
            "profile one failure begets the next (--after-bsod power-cycle measures the odds "
            "per reboot of a healthy system)."
        )
    print("Why:")
    print(format_chain(row["explanation"]))
