"""`apiclab kvm info` and `apiclab kvm reproduce`: the host's real KVM, and the 0x5C mechanism on it.

`reproduce` runs the phase-0 clock wait of apiclab.scenarios.kvm_cases on /dev/kvm after three
APIC images, runs the same program and image on the model, and reports each case's outcome, the
LAPIC state read back with KVM_GET_LAPIC, and, where host and model differ, the evidence.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from apiclab.arch.lapic_state import LapicState
from apiclab.arch.registers import Reg
from apiclab.arch.vectors import vectors_of
from apiclab.backends.base import BackendUnavailable, RunResult
from apiclab.backends.kvm.backend import KvmBackend, open_kvm
from apiclab.backends.kvm.deviation import deviation, outcome
from apiclab.backends.kvm.info import host_info
from apiclab.backends.kvm.ioctls import KvmError
from apiclab.backends.kvm.profile_match import model_for_host
from apiclab.backends.kvm.system import DEV_KVM
from apiclab.backends.kvm.tracefs import TraceUnavailable
from apiclab.cli import kvm_storm_cmd
from apiclab.cli.numbers import int_in
from apiclab.engine.events import Bugcheck, to_dict
from apiclab.engine.trace import Trace
from apiclab.errors import UserError
from apiclab.guest.program import Mode
from apiclab.hypervisor.program_run import run_program
from apiclab.report import export
from apiclab.scenarios.kvm_cases import DEFAULT_WAIT_MS, KvmCase, cases

MAX_WAIT_MS = 60_000  # a minute: Windows waits 3 s; each run may take 4 x the wait


def register(subparsers: Any) -> None:
    kvm = subparsers.add_parser(
        "kvm", help="the host's real KVM: info, reproduce the 0x5C mechanism on it",
        description="Drive this machine's /dev/kvm directly from Python (ioctls through fcntl and "
        "ctypes, no QEMU). 'info' says what the host's KVM is; 'reproduce' runs the seed's "
        "mechanism on it and on the model. Opening /dev/kvm needs root or the kvm group; "
        "--trace reads tracefs, which needs root.")
    sub = kvm.add_subparsers(dest="kvm_command", metavar="SUBCOMMAND")
    info = sub.add_parser(
        "info", help="API version, module, capabilities, APICv",
        description="Print what the host's KVM is: its API version, the kernel module and "
        "kernel, whether APICv is on, the host CPU's VMX/SVM bits, the guest CPUID bits apiclab "
        "relies on (x2APIC, TSC-deadline), the TSC rate and the capabilities apiclab uses.")
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.add_argument("--device", default=DEV_KVM, help=f"KVM device (default {DEV_KVM})")
    info.set_defaults(func=run_info)
    rep = sub.add_parser(
        "reproduce", help="the phase-0 clock wait after three APIC images, on /dev/kvm and on "
        "the model",
        description="Run Windows' phase-0 clock wait (HalpWaitForPhase0ClockTick) as a guest "
        "program on /dev/kvm after each of three local-APIC images pushed with KVM_SET_LAPIC "
        "(the reset image, a stale in-service 0xE1, a pending 0xE1), run the same program and "
        "image on the model, and report each outcome (clock tick or bugcheck 0x5C) with the "
        "APIC state read back; where host and model differ, the deviation and its evidence.")
    rep.add_argument("--wait-ms", type=int_in(1, MAX_WAIT_MS), default=DEFAULT_WAIT_MS,
                     help=f"the clock wait's TSC deadline, 1..{MAX_WAIT_MS} "
                     f"(default {DEFAULT_WAIT_MS}; "
                     "Windows waits 3000)")
    rep.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.X2APIC_REAL.value,
                     help="how the guest reaches its APIC (default x2apic-real)")
    rep.add_argument("--trace", action="store_true",
                     help="include each run's KVM tracepoints (kvm_apic_accept_irq, kvm_eoi...)")
    rep.add_argument("--json", action="store_true", help="one JSON object")
    rep.add_argument("--device", default=DEV_KVM, help=f"KVM device (default {DEV_KVM})")
    rep.add_argument("--save-lapic", metavar="DIR", type=Path,
                     help="save each case's KVM_GET_LAPIC image as DIR/CASE.lapic "
                     "(input for `apiclab diagnose`)")
    export.add_arguments(rep)
    rep.set_defaults(func=run_reproduce)
    kvm_storm_cmd.register(sub)  # `kvm storm`: its options and report live in their own module
    kvm.set_defaults(func=lambda args: _usage(kvm))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _host(device: str) -> dict[str, Any]:
    try:
        with open_kvm(device) as kvm:
            return host_info(kvm)
    except BackendUnavailable as e:
        raise UserError(str(e)) from None
    except KvmError as e:
        raise UserError(f"KVM refused {e.ioctl}: {e.strerror}") from None


def run_info(args: argparse.Namespace) -> int:
    info = _host(args.device)
    info["model"] = model_for_host(info)  # the profile `kvm storm` runs the model with
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    caps = info["capabilities"]
    print(f"KVM API version   {info['api_version']}")
    print(f"module            {', '.join(info['modules']) or 'unknown'}"
          f"   (kernel {info['kernel']})")
    print(f"APICv             {'yes' if info['apicv']['available'] else 'no'}"
          f"   ({info['apicv']['source']})")
    host_cpu = info["host_cpu"]
    print(f"host CPU          vmx={_yn(host_cpu['vmx'])} svm={_yn(host_cpu['svm'])} "
          f"running under a hypervisor={_yn(host_cpu['hypervisor'])}")
    print(f"guest CPUID       x2APIC={_yn(info['cpuid']['x2apic'])} "
          f"TSC-deadline={_yn(info['cpuid']['tsc_deadline'])}")
    print(f"TSC               {info['tsc_khz']} kHz")
    print(f"model profile     {info['model']['profile']}, APICv "
          f"{'on' if info['model']['apicv'] else 'off'}   ({info['model']['why']})")
    print("capabilities")
    for name, value in caps.items():
        print(f"  {name:<20} {value}")
    return 0


def _yn(value: bool) -> str:
    return "yes" if value else "no"


def _lapic_summary(lapic: LapicState | None) -> dict[str, Any]:
    if lapic is None:
        return {}
    return {"irr": vectors_of(lapic.irr), "isr": vectors_of(lapic.isr),
            "ppr": lapic.get(Reg.PPR), "tpr": lapic.get(Reg.TPR)}


def _bugcheck(result_trace: Any) -> dict[str, Any] | None:
    events = [e for e in result_trace.events if isinstance(e, Bugcheck)]
    if not events:
        return None
    return {"code": events[0].code, "params": list(events[0].params)}


def _run_case(backend: KvmBackend, case: KvmCase, tsc_hz: int, wait_ms: int,
              with_trace: bool, save_lapic: Path | None = None) -> dict[str, Any]:
    timeout_s = max(5.0, 4 * wait_ms / 1000)
    try:
        result: RunResult = backend.run(case.program, lapic_image=case.image,
                                        timeout_s=timeout_s)
        trace_note = None
    except TraceUnavailable as e:  # evidence without tracepoints rather than no run at all
        backend.trace_events = False
        result = backend.run(case.program, lapic_image=case.image, timeout_s=timeout_s)
        trace_note = str(e)
    except BackendUnavailable as e:
        raise UserError(str(e)) from None
    model = run_program(case.program, lapic_image=case.image, apicv=False, tsc_hz=tsc_hz)
    if save_lapic is not None and result.lapic is not None:
        _save_image(save_lapic / f"{case.name}.lapic", result.lapic.encode())
    lapic = _lapic_summary(result.lapic)
    tracepoints = result.evidence.get("tracepoints")
    row: dict[str, Any] = {
        "case": case.name,
        "title": case.description,
        "outcome": outcome(result.trace),
        "bugcheck": _bugcheck(result.trace),
        "lapic": lapic,
        "model_outcome": outcome(model),
        "model_bugcheck": _bugcheck(model),
        "timed_out": result.timed_out,
        "trace": [to_dict(e) for e in result.trace.events],
        "model_trace": [to_dict(e) for e in model.guest_visible()],
        "deviation": deviation(result.trace, model, host_lapic=lapic, tracepoints=tracepoints,
                               program=case.program, trace_note=trace_note),
    }
    if with_trace:
        row["tracepoints"] = [tp for tp in tracepoints or [] if tp.get("own")]
    return row


def _save_image(path: Path, image: bytes) -> None:
    """Written whole or not at all: a reader never sees half an image."""
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(image)
        part.replace(path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise UserError(f"--save-lapic: cannot write {path}: {e.strerror}") from None


def run_reproduce(args: argparse.Namespace) -> int:
    drawn = export.wanted(args)
    info = _host(args.device)
    tsc_hz = info["tsc_khz"] * 1000
    backend = KvmBackend(args.device, trace_events=True)
    if args.save_lapic is not None and not args.save_lapic.is_dir():
        raise UserError(f"--save-lapic {args.save_lapic}: not a directory")
    case_list = cases(args.wait_ms, tsc_hz, Mode(args.mode))
    rows = [_run_case(backend, case, tsc_hz, args.wait_ms, args.trace, args.save_lapic)
            for case in case_list]
    if drawn:
        _export(args, case_list, rows, tsc_hz)
    host = {k: info[k] for k in ("api_version", "module", "kernel", "apicv", "tsc_khz")}
    host.update(wait_ms=args.wait_ms, mode=args.mode)
    if args.json:
        print(json.dumps({"host": host, "cases": rows}, indent=2))
    else:
        _print_human(host, rows)
    return 0


def _export(args: argparse.Namespace, case_list: list[KvmCase], rows: list[dict[str, Any]],
            tsc_hz: int) -> None:
    from apiclab.report.stories import host_and_model_stories

    stories = []
    for case, row in zip(case_list, rows, strict=True):
        # The model's run is deterministic: run again for its whole trace (the row keeps only
        # the guest-visible part).
        model = run_program(case.program, lapic_image=case.image, apicv=False, tsc_hz=tsc_hz)
        host = Trace.from_dicts(row["trace"]).events
        summary = (row["deviation"] or {}).get("summary", "")
        lapic = row["lapic"]
        if lapic:
            summary += (" " if summary else "") + (
                f"KVM_GET_LAPIC at the end: IRR {_hexlist(lapic['irr'])} ISR "
                f"{_hexlist(lapic['isr'])} PPR {lapic['ppr']:#04x}.")
        stories += host_and_model_stories(case.name, case.description, host, model.events, summary)
    export.export(args, stories, title="apiclab kvm reproduce: host KVM and the model",
                  subtitle=f"guest {args.mode}, wait {args.wait_ms} ms")


def _fmt_outcome(kind: str, bugcheck: dict[str, Any] | None) -> str:
    if kind == "bugcheck" and bugcheck:
        params = ", ".join(f"{p:#x}" for p in bugcheck["params"])
        return f"bugcheck {bugcheck['code']:#x} ({params})"
    return {"tick": "tick received"}.get(kind, kind)


def _print_human(host: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    apicv = "yes" if host["apicv"]["available"] else "no"
    print(f"KVM API {host['api_version']}, module {host['module']}, APICv {apicv}, "
          f"TSC {host['tsc_khz']} kHz; guest {host['mode']}, clock 0xd1 every 1 ms, "
          f"wait {host['wait_ms']} ms")
    for row in rows:
        lapic = row["lapic"]
        print(f"\n{row['case']}: {row['title']}")
        print(f"  host   {_fmt_outcome(row['outcome'], row['bugcheck'])}")
        print(f"         KVM_GET_LAPIC at the end: IRR {_hexlist(lapic['irr'])} "
              f"ISR {_hexlist(lapic['isr'])} PPR {lapic['ppr']:#04x}")
        for event in row["trace"]:
            if event["kind"] == "interrupt":
                print(f"         handler {event['vector']:#x} at {event['time'] / 1e6:.3f} ms "
                      f"read ISR {_hexlist(event['isr'])} IRR {_hexlist(event['irr'])} "
                      f"PPR {event['ppr']:#04x}")
        print(f"  model  {_fmt_outcome(row['model_outcome'], row['model_bugcheck'])}")
        dev = row["deviation"]
        if dev:
            print(f"  DEVIATION: {dev['summary']}")
            for tp in dev.get("tracepoints", [])[:8]:
                print(f"    {tp['event']}: {tp['message']}")
        shown = [tp for tp in row.get("tracepoints", []) if _interrupt_tracepoint(tp)]
        if shown:
            print(f"  tracepoints (interrupt and EOI; all {len(row['tracepoints'])} in --json)")
        for tp in shown[:30]:
            print(f"    {tp['time_s']:.6f} {tp['event']}: {tp['message']}")


def _interrupt_tracepoint(tp: dict[str, Any]) -> bool:
    msg = str(tp.get("message", ""))
    return tp.get("event") in ("kvm_apic_accept_irq", "kvm_inj_virq", "kvm_eoi", "kvm_pv_eoi") \
        or "APIC_EOI" in msg or "msr_write 80b" in msg


def _hexlist(vectors: list[int]) -> str:
    return "[" + ", ".join(f"{v:#x}" for v in vectors) + "]"
