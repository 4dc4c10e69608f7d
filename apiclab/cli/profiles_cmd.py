"""`apiclab profiles`: which KVM fix each profile switch hinges on."""

from __future__ import annotations

import argparse
import json
from typing import Any

from apiclab.hypervisor.profiles import PROFILES, SWITCHES


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profiles", help="list the KVM profiles and the commits behind each behaviour switch",
        description="Print every behaviour switch of the modelled KVM reset and restore paths: "
        "what it changes, the Linux commit (id, title, kernel) it comes from, and which profiles "
        "have it on. --json prints the same as one object.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        doc = {
            "switches": {
                s.name: {
                    "meaning": s.meaning,
                    "commit": s.introduced_by.commit,
                    "title": s.introduced_by.title,
                    "kernel": s.introduced_by.kernel,
                }
                for s in SWITCHES.values()
            },
            "profiles": {
                p.name: {"kernel": p.kernel, "summary": p.summary, "switches": sorted(p.on_switches)}
                for p in PROFILES.values()
            },
        }
        print(json.dumps(doc, indent=2))
        return 0
    names = list(PROFILES)
    print("switch".ljust(32) + "".join(n.removeprefix("kvm-").rjust(7) for n in names))
    for s in SWITCHES.values():
        cells = "".join(("on" if PROFILES[n].on(s.name) else "-").rjust(7) for n in names)
        print(s.name.ljust(32) + cells)
    print()
    for s in SWITCHES.values():
        print(f"{s.name}: {s.meaning}")
        print(f"    source: {s.introduced_by.cite()}")
    print()
    for p in PROFILES.values():
        print(f"{p.name:<9} {p.summary}")
    return 0
