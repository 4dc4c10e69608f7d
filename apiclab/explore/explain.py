"""The explanation chain of a counterexample, in the form `apiclab reproduce` prints.

A reboot that ends in a bugcheck is explained by `apiclab.report.explain.explain_failure` (the
seed's chain: pending vector, restore, stale delivery, blocked clock, bugcheck). Other runs get a
generic chain of the interrupt events, each with its registers; every chain ends with the
property's verdict at the event where it broke. Reads only the trace (invariant 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiclab.engine import events as ev
from apiclab.engine.events import Event
from apiclab.explore.properties import Property, Violation
from apiclab.hypervisor.profiles import Profile
from apiclab.report.explain import explain_failure

_GENERIC_KINDS = frozenset(
    {"snapshot", "restore", "timer-after-restore", "reboot", "reset", "set-lapic", "accept", "deliver", "eoi",
     "wait-start", "clock-ok", "end", "apicv"}
)


def explain(
    events: Sequence[Event], prop: Property, violation: Violation, profile: Profile | None = None
) -> list[dict[str, Any]]:
    """[{"step", "time_ns", "registers", "text"}], ending with the property's verdict."""
    if any(e.kind == "bugcheck" for e in events):
        # The seed's failure: `explain_failure` tells it (it assumes a bugcheck ends the trace;
        # on other reboot failures it would claim a blocked clock that was in fact delivered).
        chain = explain_failure(events, profile=profile)
    else:
        chain = _generic_chain(events[: violation.index + 1])
    at = events[violation.index] if 0 <= violation.index < len(events) else None
    chain.append({
        "step": "violation",
        "time_ns": violation.time,
        "registers": _registers(at) if at is not None else {},
        "text": f"Property {prop.name} ({prop.summary}) is broken"
        + (f" at event #{violation.index} ({at.kind})" if at is not None else "")
        + f": {violation.text}.",
    })
    return chain


def _registers(event: Event) -> dict[str, Any]:
    return event.registers()


def _generic_chain(events: Sequence[Event]) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    accepted: set[tuple[int, str]] = set()
    for i, event in enumerate(events):
        if event.kind not in _GENERIC_KINDS:
            continue
        if isinstance(event, ev.Accept):
            key = (event.vector, str(event.path or ""))
            if key in accepted:
                continue  # a periodic source repeats itself; its first arrival says it all
            accepted.add(key)
        chain.append({
            "step": event.kind,
            "time_ns": event.time,
            "registers": _registers(event),
            "text": (_restore_text(event, events, i) if isinstance(event, ev.SetLapic)
                     else _text(event)),
        })
    return chain


def _restore_text(event: ev.SetLapic, events: Sequence[Event], index: int) -> str:
    """KVM_SET_LAPIC, with the fate of what was accepted while it ran (the `before` registers are
    taken as it starts, so an interrupt its timer restart fired shows up as an `accept` just
    before it at the same time)."""
    text = _text(event)
    during = []
    j = index - 1
    while j >= 0 and isinstance(prior := events[j], ev.Accept) and prior.time == event.time:
        during.append(prior.vector)
        j -= 1
    leftover = sorted(set(event.pir or []) & set(event.before.get("pir", [])))
    if leftover:
        text += (
            f" PIR still holds {_fmt(leftover)} from before: this KVM does not clear the posted-interrupt "
            "descriptor on KVM_SET_LAPIC (967235d32032 does), so the next entry moves it into IRR."
        )
    pending = set(event.pir or []) | set(event.irr or [])
    for vector in reversed(during):
        if vector in pending:
            text += f" The {vector:#04x} accepted during the restore is still pending."
        else:
            text += (
                f" The {vector:#04x} accepted during the restore is gone: the PIR was cleared "
                "after the timer restarted (967235d32032's order)."
                if event.pir is not None
                else f" The {vector:#04x} accepted during the restore is gone."
            )
    return text


def _text(event: Event) -> str:
    match event:
        case ev.SnapshotTaken():
            return (
                f"QEMU stopped the vCPU and saved KVM_GET_LAPIC: {event.timer_mode} timer "
                f"{event.timer_vector:#04x} armed"
                + (f", TSC deadline {event.tsc_deadline}" if event.tsc_deadline else "")
                + "."
            )
        case ev.Accept():
            fate = {
                "posted": "posted in PIR", "accepted": "set in IRR",
                "merged": "merged with the pending one in IRR",
                "disabled": "dropped: the APIC is software-disabled",
                "illegal": "refused as an illegal vector",
            }.get(str(event.path), str(event.path))
            return f"Vector {event.vector:#04x} from {event.source or 'the host'}: {fate}."
        case ev.SetLapic():
            before = event.before
            text = "KVM_SET_LAPIC restored the image"
            for key in ("pir", "rvi", "irr"):
                after = getattr(event, key)
                if after is not None and before.get(key) != after:
                    text += f"; {key.upper()} {_fmt(before.get(key))} → {_fmt(after)}"
            return text + "."
        case ev.Deliver():
            was = "clear" if event.irr_was_set is False else "set"
            return f"Vector {event.vector:#04x} delivered ({event.via}); its IRR bit was {was}."
        case ev.Reboot():
            return (
                "The guest wrote the reset port with interrupts disabled; pending in IRR: "
                f"{_fmt(event.irr or [])}."
            )
        case ev.Reset():
            return "QEMU's system reset: the vCPU is out of the guest; devices are reset."
        case ev.WaitStart():
            return f"{event.text}, with interrupts enabled."
        case ev.Eoi():
            vector = event.vector or 0
            if not vector and event.svi is not None and event.isr:
                return (
                    "The guest wrote EOI; EOI virtualization cleared VISR[SVI] with SVI = 0x00 "
                    f"(SDM §29.1.2), so nothing was retired and {_fmt(event.isr)} stays in service."
                )
            return "The guest wrote EOI" + (f", retiring {vector:#04x}." if vector else ".")
        case ev.ApicvChange():
            if not event.active:
                return "KVM deactivated APICv (an inhibit was set): interrupts go by event injection."
            svi = event.svi or 0
            return (
                f"KVM activated APICv (the inhibit was cleared) with ISR = {_fmt(event.isr or [])}: "
                f"SVI = {_fmt(svi)}"
                + (" — stale, it does not follow the ISR" if event.isr and svi != max(event.isr) else "")
                + "."
            )
        case ev.End():
            return "End of the run."
        case _:
            return str(getattr(event, "text", event.kind))


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:#04x}" for v in value) + "]"
    if isinstance(value, int):
        return f"{value:#04x}"
    return str(value)


def format_chain(chain: Sequence[dict[str, Any]]) -> str:
    """The chain as numbered lines, registers in hex (PIR too, when something is posted)."""
    lines = []
    for i, item in enumerate(chain, 1):
        regs = item["registers"]
        shown = [
            f"{key.upper()}={_fmt(regs[key])}"
            for key in ("rvi", "svi", "vppr", "ppr", "irr", "isr", "pir")
            if key in regs and (key != "pir" or regs[key])
        ]
        lines.append(f"  {i}. [{item['time_ns'] / 1e9:9.6f} s] {item['text']}")
        if shown:
            lines.append(f"     {' '.join(shown)}")
    return "\n".join(lines)
