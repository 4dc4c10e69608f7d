"""Turn the trace of a failed boot into a chain of register states a reader can follow.

Reads only the observation (docs/design.md, invariant 2): the `reboot`, `set-lapic`, `deliver`,
`wait-start`, `accept` and `bugcheck` events the model records, each carrying the registers of
that moment. Each link says what happened and why it matters, in the SDM's and KVM's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from apiclab.engine import events as ev
from apiclab.engine.events import Event
from apiclab.hypervisor.profiles import SWITCHES, Profile, Sw

E = TypeVar("E", bound=Event)


def _registers(event: Event) -> dict[str, Any]:
    return event.registers()


def _hex(vectors: Sequence[int]) -> str:
    return "[" + ", ".join(f"{v:#04x}" for v in vectors) + "]" if vectors else "[]"


Link = dict[str, Any]


def _link(step: str, event: Event, text: str) -> Link:
    return {"step": step, "time_ns": event.time, "registers": _registers(event), "text": text}


def explain_failure(
    events: Sequence[Event], *, clock_vector: int = 0xD1, profile: Profile | None = None
) -> list[Link]:
    """The explanation chain of one failed cycle: [{"step", "time_ns", "registers", "text"}].

    Each step is found in the trace by the event that shows it; a step whose event is absent is
    left out, so the chain says only what the run shows. The commits the restore step cites come
    from the run's profile (default: the profile table's citations)."""
    chain: list[Link] = []
    chain.extend(_pending_at_reboot(events))
    chain.extend(_restore(events, profile))
    chain.extend(_stale_delivery(events))
    wait = _first(events, ev.WaitStart)
    if wait is not None:
        chain.extend(_phase0_wait(events, wait, clock_vector))
    chain.extend(_failure(events))
    return chain


def _pending_at_reboot(events: Sequence[Event]) -> list[Link]:
    reboot = _first(events, ev.Reboot)
    if reboot is None:
        return []
    rvi = reboot.rvi
    text = (
        "The guest wrote the reset port with interrupts disabled; pending in VIRR: "
        f"{_hex(reboot.irr or [])}"
    )
    if reboot.pir:
        text += f", posted in PIR: {_hex(reboot.pir)}"
    if rvi is not None:
        text += f", so RVI = {rvi:#04x}"
    return [_link("pending-at-reboot", reboot, text + ".")]


def _why_rvi_kept(profile: Profile | None) -> str:
    """Why KVM_SET_LAPIC left RVI alone under this profile, citing the commit from its table."""
    fix = SWITCHES[Sw.RESTORE_SETS_RVI].introduced_by
    if profile is not None and profile.on(Sw.RESTORE_RVI_WRITE_REMOVED):
        gone = profile.source_of(Sw.RESTORE_RVI_WRITE_REMOVED)
        return (
            f"this KVM no longer writes RVI on restore ({gone.commit} \"{gone.title}\", "
            f"{gone.kernel}), and entry rewrites it only while the APIC is software-enabled"
        )
    if profile is not None:
        fix = profile.source_of(Sw.RESTORE_SETS_RVI)
    return (
        f"this KVM does not write RVI on restore (fixed by {fix.commit} \"{fix.title}\", "
        f"first in {fix.kernel})"
    )


def _restore(events: Sequence[Event], profile: Profile | None) -> list[Link]:
    restore = _first(events, ev.SetLapic)
    if restore is None:
        return []
    rvi = restore.rvi
    if rvi is None:
        text = "QEMU's system reset pushed the reset image with KVM_SET_LAPIC: IRR and ISR are empty."
        return [_link("restore", restore, text)]
    kept = rvi and rvi == restore.before.get("rvi")
    text = (
        "QEMU's system reset pushed the reset image with KVM_SET_LAPIC: VIRR and VISR are "
        f"now empty and SVI = {restore.svi or 0:#04x}, "
    )
    text += (
        f"but RVI still holds {rvi:#04x}: {_why_rvi_kept(profile)}."
        if kept
        else f"and RVI = {rvi:#04x}."
    )
    return [_link("restore", restore, text)]


def _stale_delivery(events: Sequence[Event]) -> list[Link]:
    stale = next(
        (e for e in events if isinstance(e, ev.Deliver) and e.irr_was_set is False), None
    )
    if stale is None:
        return []
    v = stale.vector
    links = [
        _link(
            "stale-delivery",
            stale,
            f"At the first instruction boundary with IF=1 the CPU delivered RVI = {v:#04x} although "
            f"VIRR[{v:#04x}] was clear (SDM §29.2.2 takes the vector from RVI): VISR[{v:#04x}] = 1, "
            f"SVI = {_or(stale.svi, v):#04x}, VPPR = {_or(stale.vppr, v & 0xF0):#04x}.",
        )
    ]
    handler = next(
        (
            e for e in events
            if isinstance(e, ev.Handler) and e.time == stale.time and e.vector == v
            and not e.eoi
        ),
        None,
    )
    if handler is not None:
        text = f"Its handler ({handler.text}), so {v:#04x} stays in service."
        links.append(_link("no-eoi", handler, text))
    return links


def _phase0_wait(events: Sequence[Event], wait: ev.WaitStart, clock_vector: int) -> list[Link]:
    links = [
        _link(
            "phase0-wait",
            wait,
            f"{wait.text}: deadline = RDTSC + "
            f"{wait.ticks or 0} TSC ticks; in service: {_hex(wait.isr or [])}, "
            f"priority {_or(wait.vppr, _or(wait.ppr, 0)):#04x}.",
        )
    ]
    later = [e for e in events
             if e.time >= wait.time and getattr(e, "vector", None) == clock_vector]
    blocked = next((e for e in later if isinstance(e, ev.Accept)), None)
    if blocked is None or any(isinstance(e, ev.Deliver) for e in later):
        return links
    prio = _or(blocked.vppr, _or(blocked.ppr, 0))
    links.append(
        _link(
            "clock-blocked",
            blocked,
            f"The clock interrupt {clock_vector:#04x} arrived (RVI = "
            f"{_or(blocked.rvi, clock_vector):#04x}) but its class {clock_vector >> 4:#x} "
            f"is not above the processor-priority class {prio >> 4:#x} (SDM §29.2.1), and nothing "
            "EOIs the stale vector: it is never delivered.",
        )
    )
    return links


def _failure(events: Sequence[Event]) -> list[Link]:
    bugcheck = _first(events, ev.Bugcheck)
    if bugcheck is None:
        panic = _first(events, ev.Panic)
        return [] if panic is None else [_link("panic", panic, f"No tick: {panic.text}")]
    params = ", ".join(f"{p:#x}" for p in bugcheck.params)
    text = (
        f"No tick before the deadline: KeBugCheckEx({bugcheck.code:#x}, "
        f"{params}) — HAL_INITIALIZATION_FAILED, HAL clock interrupt not received."
    )
    return [_link("bugcheck", bugcheck, text)]


def _first(events: Sequence[Event], kind: type[E]) -> E | None:
    return next((e for e in events if isinstance(e, kind)), None)


def _or(value: int | None, default: int) -> int:
    """An observed register, or `default` where the event did not record it."""
    return default if value is None else value


def format_chain(chain: Sequence[dict[str, Any]]) -> str:
    """The chain as numbered lines, registers in hex."""
    lines = []
    for i, item in enumerate(chain, 1):
        regs = item["registers"]
        shown = []
        for key in ("rvi", "svi", "vppr", "ppr", "irr", "isr"):
            if key in regs:
                value = regs[key]
                shown.append(f"{key.upper()}={_hex(value) if isinstance(value, list) else f'{value:#04x}'}")
        lines.append(f"  {i}. [{item['time_ns'] / 1e9:9.6f} s] {item['text']}")
        if shown:
            lines.append(f"     {' '.join(shown)}")
    return "\n".join(lines)
