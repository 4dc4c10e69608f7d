"""`apiclab vmx`: virtual-interrupt delivery on Bochs' VMX, next to the model's prediction.

Boots the VMX probe ROM (apiclab/backends/bochs_vmx) in Bochs: for each case a tiny guest runs
with virtual-interrupt delivery from a chosen RVI/SVI and virtual-APIC page, and the hypervisor
reads back what was delivered and RVI, SVI, VPPR, VISR and VIRR at the exit. The same initial
state runs on `apiclab.arch.vmx`; any difference is shown with the raw Bochs line as evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apiclab.backends.base import BackendUnavailable
from apiclab.backends.bochs_vmx.cases import CASES, VmxCase
from apiclab.backends.bochs_vmx.result import EXIT_VMCALL, ProbeError, VmxOutcome, vectors
from apiclab.backends.bochs_vmx.runner import DEFAULT_TIMEOUT_S, BochsProbe
from apiclab.cli.numbers import float_in
from apiclab.errors import UserError
from apiclab.executors.bochs_vmx import BochsVmxExecutor, differing_fields
from apiclab.executors.model import VmxModelExecutor

MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.01, 3600.0  # an hour is far beyond the probe's few seconds


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "vmx",
        help="VMX virtual-interrupt delivery (stale RVI) on Bochs and on the model",
        description="Run a bare-metal VMX hypervisor ROM on Bochs: per case, a guest with "
        "virtual-interrupt delivery starts from a given RVI/SVI and virtual-APIC page; compare "
        "what Bochs delivers and leaves in RVI, SVI, VPPR, VISR and VIRR with the model "
        "(SDM vol. 3C §29.2).",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--timeout", type=float_in(MIN_TIMEOUT_S, MAX_TIMEOUT_S),
                   default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"stop Bochs after S seconds, {MIN_TIMEOUT_S:g}..{MAX_TIMEOUT_S:g} "
                   f"(default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bochs = BochsVmxExecutor(args.timeout)
    try:
        probe = bochs.probe()
    except BackendUnavailable as e:
        raise UserError(str(e)) from None
    except ProbeError as e:
        print(f"apiclab: {e}", file=sys.stderr)
        return 1
    model = VmxModelExecutor()
    rows = [_row(case, probe, bochs, model) for case in CASES]
    if args.json:
        print(json.dumps(_document(probe, rows), indent=2))
    else:
        print(_text(probe, rows))
    return 0


def _row(case: VmxCase, probe: BochsProbe, bochs: BochsVmxExecutor,
         model: VmxModelExecutor) -> dict[str, Any]:
    predicted = model.run(case)
    observed = bochs.run(case) if bochs.can_run(case) is None else None
    diff = ["missing"] if observed is None else differing_fields(predicted, observed)
    return {"case": case, "bochs": observed, "model": predicted, "differences": diff,
            "evidence": probe.run.lines.get(case.id, "")}


def _hex(v: int) -> str:
    return f"{v:02X}"


def _set(bits: int) -> str:
    return "{" + ",".join(_hex(v) for v in vectors(bits)) + "}"


def _state(o: VmxOutcome) -> str:
    delivered = " ".join(_hex(v) for v in o.delivered) or "none"
    tail = "" if o.exit_reason == EXIT_VMCALL else f" exit reason {o.exit_reason:#x}"
    if o.exception is not None:
        tail += f" guest exception {o.exception}"
    return (f"delivered {delivered:<6} after RVI={_hex(o.rvi)} SVI={_hex(o.svi)} "
            f"VPPR={_hex(o.vppr)} VISR={_set(o.visr)} VIRR={_set(o.virr)}{tail}")


def _initial(case: VmxCase) -> str:
    virr = _hex(case.virr_vector) if case.virr_vector else ""
    visr = _hex(case.visr_vector) if case.visr_vector else ""
    return (f"RVI={_hex(case.rvi)} SVI={_hex(case.svi)} VTPR={_hex(case.vtpr)} "
            f"VIRR={{{virr}}} VISR={{{visr}}}, guest EOIs {case.eois}")


def _text(probe: BochsProbe, rows: list[dict[str, Any]]) -> str:
    c = probe.run.controls
    lines = [f"VMX virtual-interrupt delivery (SDM vol. 3C §29.2) on {probe.version} "
             "(cpu corei7_skylake_x) and on the model",
             f"controls: pin {c.get('pin', 0):08X} proc {c.get('proc', 0):08X} "
             f"proc2 {c.get('proc2', 0):08X} exit {c.get('exit', 0):08X} "
             f"entry {c.get('entry', 0):08X} (IA32_VMX_BASIC {c.get('vmx_basic', 0):016X})", ""]
    for row in rows:
        case: VmxCase = row["case"]
        lines.append(f"{case.id} {case.name}: {_initial(case)}")
        lines.append(f"    {case.what}")
        bochs = row["bochs"]
        lines.append("  bochs  " + (_state(bochs) if bochs else "no result"))
        lines.append("  model  " + _state(row["model"]))
        if row["differences"]:
            lines.append(f"  DIFFERS in {', '.join(row['differences'])}")
            lines.append(f"  evidence: {row['evidence'] or '(no @CASE line)'}")
        else:
            lines.append("  agree")
    agree = sum(1 for row in rows if not row["differences"])
    lines.append("")
    lines.append(f"{len(rows)} cases: Bochs and the model agree on {agree}"
                 + ("" if agree == len(rows) else f", differ on {len(rows) - agree}"))
    return "\n".join(lines)


def _outcome_json(o: VmxOutcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"delivered": list(o.delivered), "rvi": o.rvi, "svi": o.svi, "vppr": o.vppr,
            "vtpr": o.vtpr, "visr": vectors(o.visr), "virr": vectors(o.virr),
            "exit_reason": o.exit_reason, "exception": o.exception}


def _document(probe: BochsProbe, rows: list[dict[str, Any]]) -> dict[str, Any]:
    cases = []
    for row in rows:
        case: VmxCase = row["case"]
        cases.append({
            "id": case.id, "name": case.name, "what": case.what,
            "initial": {"rvi": case.rvi, "svi": case.svi, "vtpr": case.vtpr,
                        "virr": [case.virr_vector] if case.virr_vector else [],
                        "visr": [case.visr_vector] if case.visr_vector else [],
                        "eois": case.eois},
            "bochs": _outcome_json(row["bochs"]),
            "model": _outcome_json(row["model"]),
            "agrees": not row["differences"],
            "differences": row["differences"],
            "evidence": row["evidence"],
        })
    return {"implementation": probe.version, "cpu": "corei7_skylake_x",
            "controls": probe.run.controls, "argv": probe.argv,
            "bochs_messages": probe.bochs_messages, "cases": cases,
            "agree": sum(1 for c in cases if c["agrees"]), "total": len(cases)}
