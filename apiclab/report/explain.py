"""Turn the trace of a failed boot into a chain of register states a reader can follow.

Reads only the observation (ARCHITECTURE.md, invariant 2): the `reboot`, `set-lapic`, `deliver`,
`wait-start`, `accept` and `bugcheck` events the model records, each carrying the registers of
that moment. Each link says what happened and why it matters, in the SDM's and KVM's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiclab.engine.trace import Event

_REG_KEYS = ("rvi", "svi", "vppr", "ppr", "tpr", "irr", "isr", "pir")


def _registers(event: Event) -> dict[str, Any]:
    return {k: event.data[k] for k in _REG_KEYS if k in event.data}


def _hex(vectors: Sequence[int]) -> str:
    return "[" + ", ".join(f"{v:#04x}" for v in vectors) + "]" if vectors else "[]"


def explain_failure(events: Sequence[Event], *, clock_vector: int = 0xD1) -> list[dict[str, Any]]:
    """The explanation chain of one failed cycle: [{"step", "time_ns", "registers", "text"}]."""
    chain: list[dict[str, Any]] = []

    def link(step: str, event: Event, text: str) -> None:
        chain.append(
            {"step": step, "time_ns": event.time, "registers": _registers(event), "text": text}
        )

    reboot = _first(events, "reboot")
    if reboot is not None:
        pending = reboot.data.get("irr", [])
        rvi = reboot.data.get("rvi")
        text = f"The guest wrote the reset port with interrupts disabled; pending in VIRR: {_hex(pending)}"
        if reboot.data.get("pir"):
            text += f", posted in PIR: {_hex(reboot.data['pir'])}"
        if rvi is not None:
            text += f", so RVI = {rvi:#04x}"
        link("pending-at-reboot", reboot, text + ".")
    restore = _first(events, "set-lapic")
    if restore is not None:
        before = restore.data.get("before", {})
        rvi = restore.data.get("rvi")
        if rvi is not None:
            kept = rvi and rvi == before.get("rvi")
            text = (
                "QEMU's system reset pushed the reset image with KVM_SET_LAPIC: VIRR and VISR are "
                f"now empty and SVI = {restore.data.get('svi', 0):#04x}, "
            )
            text += (
                f"but RVI still holds {rvi:#04x}: this KVM does not write RVI on restore "
                "(fixed by 4114c27d450b \"KVM: x86: reset RVI upon system reset\")."
                if kept
                else f"and RVI = {rvi:#04x}."
            )
        else:
            text = "QEMU's system reset pushed the reset image with KVM_SET_LAPIC: IRR and ISR are empty."
        link("restore", restore, text)
    stale = next(
        (e for e in events if e.kind == "deliver" and not e.data.get("irr_was_set", True)), None
    )
    if stale is not None:
        v = stale.data["vector"]
        link(
            "stale-delivery",
            stale,
            f"At the first instruction boundary with IF=1 the CPU delivered RVI = {v:#04x} although "
            f"VIRR[{v:#04x}] was clear (SDM §29.2.2 takes the vector from RVI): VISR[{v:#04x}] = 1, "
            f"SVI = {stale.data.get('svi', v):#04x}, VPPR = {stale.data.get('vppr', v & 0xF0):#04x}.",
        )
        handler = next(
            (e for e in events if e.kind == "guest" and e.time == stale.time and "handler" in e.data.get("text", "")),
            None,
        )
        if handler is not None:
            link("no-eoi", handler, f"Its handler ({handler.data['text']}), so {v:#04x} stays in service.")
    wait = _first(events, "wait-start")
    if wait is not None:
        ticks = wait.data.get("ticks", 0)
        link(
            "phase0-wait",
            wait,
            f"{wait.data.get('text', 'The guest waits for a clock tick')}: deadline = RDTSC + "
            f"{ticks} TSC ticks; in service: {_hex(wait.data.get('isr', []))}, "
            f"priority {wait.data.get('vppr', wait.data.get('ppr', 0)):#04x}.",
        )
        blocked = next(
            (
                e for e in events
                if e.kind == "accept" and e.time >= wait.time and e.data.get("vector") == clock_vector
            ),
            None,
        )
        clock_delivered = any(
            e.kind == "deliver" and e.time >= wait.time and e.data.get("vector") == clock_vector
            for e in events
        )
        if blocked is not None and not clock_delivered:
            prio = blocked.data.get("vppr", blocked.data.get("ppr", 0))
            link(
                "clock-blocked",
                blocked,
                f"The clock interrupt {clock_vector:#04x} arrived (RVI = "
                f"{blocked.data.get('rvi', clock_vector):#04x}) but its class {clock_vector >> 4:#x} "
                f"is not above the processor-priority class {prio >> 4:#x} (SDM §29.2.1), and nothing "
                "EOIs the stale vector: it is never delivered.",
            )
    failure = _first(events, "bugcheck") or _first(events, "panic")
    if failure is not None:
        if failure.kind == "bugcheck":
            params = ", ".join(f"{p:#x}" for p in failure.data.get("params", []))
            text = (
                f"No tick before the deadline: KeBugCheckEx({failure.data.get('code', 0):#x}, "
                f"{params}) — HAL_INITIALIZATION_FAILED, HAL clock interrupt not received."
            )
        else:
            text = f"No tick: {failure.data.get('text', 'panic')}"
        link("bugcheck" if failure.kind == "bugcheck" else "panic", failure, text)
    return chain


def _first(events: Sequence[Event], kind: str) -> Event | None:
    return next((e for e in events if e.kind == kind), None)


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
