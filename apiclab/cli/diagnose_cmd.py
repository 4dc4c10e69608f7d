"""`apiclab diagnose`: why the interrupts of your own VM are stuck, from its evidence.

Evidence: files (a `kvm_lapic_state` image per vCPU, QEMU `info lapic` text, WinDbg `!apic`
text with optional `!idt`, a `trace-cmd report` or tracefs trace of kvm events), or a live QEMU
over QMP. Exit 0 when no pending vector is held off, 1 when one is, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from apiclab.errors import UserError
from apiclab.report import export


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose",
        help="read a hung VM's LAPIC evidence and say why each pending interrupt is held off",
        description="Read the local-APIC evidence of your own VM and explain, with the SDM's "
        "rules, why each pending vector is or is not deliverable; recognise known KVM bugs. "
        "Exit 0: nothing held off; 1: a pending vector is held off; 2: bad input.",
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE",
                   help="evidence: kvm_lapic_state images (one per vCPU), QEMU `info lapic` "
                   "text, WinDbg `!apic` (+ `!idt`) text, or a kvm trace (trace-cmd report / "
                   "tracefs)")
    p.add_argument("--format", default="auto",
                   choices=["auto", "lapic-image", "qemu-lapic", "windbg", "trace"],
                   help="what the files hold (default: recognised from their content)")
    p.add_argument("--qmp", metavar="ADDR",
                   help="a live QEMU's QMP socket: unix:/path.sock or host:port")
    p.add_argument("--pause", action="store_true",
                   help="with --qmp: stop the guest while reading, then let it run again")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="with --qmp: give up after S seconds (default 10)")
    p.add_argument("--pid", type=int, action="append", metavar="TID",
                   help="with a trace: keep only the events of this task (a vCPU thread or "
                   "kernel worker of your VM; repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    export.add_arguments(p)  # for a kvm trace: the replayed registers over time, per vCPU
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from apiclab.diagnose import render, signatures, verdicts

    if bool(args.qmp) == bool(args.files):
        raise UserError("diagnose: give evidence files or --qmp ADDR (one of them)")
    if args.pause and not args.qmp:
        raise UserError("diagnose: --pause goes with --qmp")
    drawn = export.wanted(args)  # output paths checked before the evidence is read
    if drawn and args.qmp:
        raise UserError("diagnose: --timeline/--perfetto draw a kvm trace; a live QEMU is one "
                        "moment, with no time to draw")
    if args.qmp:
        from apiclab.diagnose import qmp

        if not 0 < args.timeout <= 600:
            raise UserError(f"--timeout {args.timeout}: expected 0 to 600 seconds")
        evidence = qmp.read(args.qmp, pause=args.pause, timeout_s=args.timeout)
    else:
        from apiclab.diagnose import detect

        evidence = detect.load(args.files, args.format, set(args.pid) if args.pid else None)
    judged = verdicts.judge(evidence)
    sigs = signatures.match(judged, evidence)
    if drawn:
        if evidence.source != "trace":
            raise UserError(f"diagnose: --timeline/--perfetto draw a kvm trace; this evidence "
                            f"({evidence.source}) is one moment, with no time to draw")
        from apiclab.diagnose.timeline import trace_stories

        stories = trace_stories(args.files[0], judged, set(args.pid) if args.pid else None)
        export.export(args, stories, title=f"apiclab diagnose: {args.files[0].name}",
                      subtitle="IRR, ISR, TPR and PPR per vCPU as the kvm events replay them")
    if args.json:
        print(json.dumps(render.to_json(evidence, judged, sigs), indent=2))
    else:
        print(render.text(evidence, judged, sigs))
    return 1 if any(v.held_off for v in judged) else 0
