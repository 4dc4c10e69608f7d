"""`apiclab kvm storm`: the seed's reboot storm on /dev/kvm, one VM rebooted in place, beside the
same storm on the model with the profile that matches the host (apiclab.backends.kvm.storm)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from apiclab.backends.kvm.system import DEV_KVM
from apiclab.errors import UserError

MAX_REBOOTS = 10_000_000


def register(sub: Any) -> None:
    storm = sub.add_parser("storm", help="the seed's reboot storm on /dev/kvm, one VM rebooted "
                           "in place, beside the model's",
                           description="Run the seed's reboot storm on the real KVM: one VM rebooted "
                           "in place as QEMU's system reset does (registers, KVM_SET_LAPIC with the "
                           "reset image, the TSC-deadline MSR, memory), the HAL's clock wait after "
                           "every reboot; per reboot tick or 0x5C and the LAPIC read back, beside "
                           "the same storm on the model with the profile matching this host.")
    storm.add_argument("--reboots", type=int, default=1000, metavar="N",
                       help="reboots in place (default 1000)")
    storm.add_argument("--pending", action="append", default=[], metavar="VEC",
                       help="a vector that arrives after the shutdown's CLI, pending at the "
                       "reset (repeatable; e.g. 0xe1, the seed's IPI)")
    storm.add_argument("--wait-ms", type=int, default=None,
                       help="the phase-0 clock wait's TSC deadline (default 50; "
                       "apiclab/backends/kvm/storm_guest.py)")
    storm.add_argument("--profile", default=None,
                       help="model profile (default: the one matching the host, see kvm info)")
    storm.add_argument("--model-apicv", choices=("host", "on", "off"), default="host",
                       help="APICv in the model (default: as on the host)")
    storm.add_argument("--json", action="store_true", help="one JSON object")
    storm.add_argument("--device", default=DEV_KVM, help=f"KVM device (default {DEV_KVM})")
    storm.set_defaults(func=run_storm)


def _vector(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UserError(f"--pending {text!r}: expected a vector such as 0xe1") from None
    if not 0x10 <= value <= 0xFF:
        raise UserError(f"--pending {text}: a vector is 0x10-0xff")
    return value


def run_storm(args: argparse.Namespace) -> int:
    # imported here, not at start-up: every apiclab command registers this one
    from apiclab.backends.kvm.storm_document import storm_document
    from apiclab.backends.kvm.storm_guest import DEFAULT_WAIT_MS
    from apiclab.cli.progress import Progress

    if args.wait_ms is None:
        args.wait_ms = DEFAULT_WAIT_MS
    if not 1 <= args.reboots <= MAX_REBOOTS:
        raise UserError(f"--reboots {args.reboots}: expected 1 to {MAX_REBOOTS}")
    if not 1 <= args.wait_ms <= 60_000:
        raise UserError(f"--wait-ms {args.wait_ms}: expected 1 to 60000 milliseconds")
    pending = sorted(set(_vector(v) for v in args.pending))
    if 0xD1 in pending:
        raise UserError("--pending 0xd1: that is the clock vector the boot waits for")
    bar = Progress("kvm storm", args.reboots)
    try:
        doc = storm_document(args.device, args.reboots, pending, args.wait_ms,
                             profile=args.profile, model_apicv=args.model_apicv,
                             progress=bar.update)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_human(doc)
    return 0


def _hexes(vectors: list[int]) -> str:
    return "[" + ", ".join(f"{v:#x}" for v in vectors) + "]"


def _print_human(doc: dict[str, Any]) -> None:
    host, model, guest = doc["host"], doc["model"], doc["guest"]
    apicv = "yes" if host["apicv"]["available"] else "no"
    print(f"kvm storm: {doc['reboots']} reboots in place on {host['device']} "
          f"({host['module']}, kernel {host['kernel']}, APICv {apicv}): "
          f"{doc['reboots_per_s']:.0f} reboots/s, {host['exits_per_reboot']:.0f} exits each")
    pending = _hexes(guest["pending"]) if guest["pending"] else "none"
    print(f"guest: clock {guest['clock_vector']:#x} every {guest['clock_period_ns'] // 1000} us, "
          f"traffic {_hexes(guest['traffic'])}, pending at the reset {pending}, "
          f"wait {guest['wait_ms']} ms")
    names = sorted(set(host["outcomes"]) | set(model["outcomes"]),
                   key=lambda k: (k != "tick", k))
    print(f"\n  {'':24}" + "".join(f"{n:>9}" for n in names))
    print(f"  {'host (KVM)':24}" + "".join(f"{host['outcomes'].get(n, 0):>9}" for n in names))
    label = f"model {model['profile']}"
    print(f"  {label:24}" + "".join(f"{model['outcomes'].get(n, 0):>9}" for n in names))
    print(f"  ({model['why']})")
    for title, rows in (("host: LAPIC read back at the reboot", host["lapic_at_reboot"]),
                        ("host: LAPIC read back after the reset", host["lapic_after_reset"]),
                        ("model: LAPIC at the reboot", model["lapic_at_reboot"])):
        print(f"\n{title} (KVM_GET_LAPIC):")
        for row in rows[:4]:
            print(f"  {row['reboots']:>8} x  IRR {_hexes(row['irr'])} ISR {_hexes(row['isr'])} "
                  f"PPR {row['ppr']:#04x} TPR {row['tpr']:#04x}")
    dev = doc["deviations"]
    if not dev["reboots"]:
        print("\nno deviation: every reboot's guest-visible events agree with the model")
        return
    print(f"\nDEVIATIONS on {dev['reboots']} reboots:")
    for kind in dev["kinds"]:
        print(f"  {kind['reboots']} x (first at reboot {kind['first_reboot']}): "
              f"{kind['evidence']['summary']}")
