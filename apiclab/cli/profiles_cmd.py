"""`apiclab profiles`: which KVM change each profile switch hinges on, and in which release."""

from __future__ import annotations

import argparse
import json
from typing import Any

from apiclab.hypervisor.profiles import ALIASES, PROFILES, SWITCHES, Switch


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profiles",
        help="list the KVM profiles, their kernel releases and the commits behind each switch",
        description="Print every behaviour switch of the modelled KVM reset, restore and entry "
        "paths: what it changes, the Linux commit (id, title, first release, function) it comes "
        "from, and which profiles have it on. --json prints the same as one object.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _switch_json(s: Switch) -> dict[str, str]:
    src = s.introduced_by
    return {
        "meaning": s.meaning,
        "commit": src.commit,
        "title": src.title,
        "first_release": src.kernel,
        "function": s.function,
        "provenance": src.provenance,
    }


def document() -> dict[str, Any]:
    """What `apiclab profiles --json` prints."""
    return {
        "switches": {str(s.name): _switch_json(s) for s in SWITCHES.values()},
        "profiles": {
            p.name: {
                "kernel": p.kernel,
                "summary": p.summary,
                "switches": [
                    {"name": str(s.name), **_switch_json(s)}
                    for s in SWITCHES.values()
                    if p.on(s.name)
                ],
            }
            for p in PROFILES.values()
        },
        "aliases": {old: new for old, new in ALIASES.items()},
    }


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(document(), indent=2))
        return 0
    names = list(PROFILES)
    width = max(len(str(s.name)) for s in SWITCHES.values()) + 2
    print("profile".ljust(width) + "".join(n.removeprefix("kvm-").rjust(7) for n in names))
    print("release".ljust(width) + "".join(PROFILES[n].kernel.rjust(7) for n in names))
    for s in SWITCHES.values():
        cells = "".join(("on" if PROFILES[n].on(s.name) else "-").rjust(7) for n in names)
        print(str(s.name).ljust(width) + cells)
    print()
    for s in SWITCHES.values():
        print(f"{s.name}: {s.meaning}")
        print(f"    source:   {s.introduced_by.cite()}")
        print(f"    changes:  {s.function}")
        print(f"    checked:  {s.introduced_by.provenance}")
    print()
    for p in PROFILES.values():
        print(f"{p.name:<9} {p.kernel:<6} {p.summary}")
    for old, new in ALIASES.items():
        print(f"{old:<9} old name for {new} (its change first shipped in {PROFILES[new].kernel})")
    return 0
