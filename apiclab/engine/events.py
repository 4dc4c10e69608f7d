"""Typed observation events: one frozen class per kind, a tagged union over them, and the codec.

These are the event objects every executor records (`apiclab.engine.trace.Trace.record`) and every
reader consumes. Each kind is a `msgspec.Struct` whose tag is the kind's name, so a JSON object
`{"kind": "deliver", ...}` decodes to `Deliver` with every field type-checked and unknown fields
refused: external traces (a file, another tool) come in through `decode_jsonl`, which says in one
line what was wrong. Every class carries the optional register snapshot (`Event`'s fields, flat),
and whether the guest itself can see the event is a property of the class (`guest_visible`), from
which `GUEST_VISIBLE_KINDS` is derived.

msgspec was chosen for this: Structs are frozen and slotted, tagged unions and validation are
built in, and its JSON encoder writes sorted keys without spaces (the canonical form) far faster
than the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, ClassVar, get_type_hints

import msgspec

from apiclab.errors import DecodeError


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True,
            forbid_unknown_fields=True, tag_field="kind"):
    """One thing that happened at `time` (virtual ns in the model, TSC-derived ns on real
    machines), with the interrupt state recorded with it: IRR/ISR/TMR/PIR as vector lists,
    TPR/PPR, and with APICv RVI/SVI/VPPR (SDM §29.1.1). Absent fields were not observed.
    `kind` is the class's tag (what happened: "deliver", "set-lapic", ...)."""

    time: int
    cpu: int | None = None  # the CPU it happened on, in a program for several CPUs
    irr: list[int] | None = None
    isr: list[int] | None = None
    pir: list[int] | None = None
    tpr: int | None = None
    ppr: int | None = None
    rvi: int | None = None
    svi: int | None = None
    vppr: int | None = None

    guest_visible: ClassVar[bool] = False
    kind: ClassVar[str] = ""  # the tag, set for each class below

    def registers(self) -> dict[str, Any]:
        """The snapshot's observed fields, by name."""
        return {k: getattr(self, k) for k in REGISTER_KEYS if getattr(self, k) is not None}


# The snapshot's field names, in the order explanations show them.
REGISTER_KEYS = ("rvi", "svi", "vppr", "ppr", "tpr", "irr", "isr", "pir")


# --- what the guest sees (the agent reports exactly these on real machines) ---------------------

class Interrupt(Event, frozen=True, tag="interrupt"):
    """The guest's handler ran for `vector` (with its ISR/IRR/TMR/PPR reads)."""

    vector: int
    tmr: list[int] | None = None
    count: int | None = None
    guest_visible: ClassVar[bool] = True


class Read(Event, frozen=True, tag="read"):
    """A guest read: an APIC register (`reg`), a port (`port`), MMIO (`addr`) or an MSR (`msr`)."""

    value: int
    reg: int | None = None
    port: int | None = None
    addr: int | None = None
    msr: int | None = None
    guest_visible: ClassVar[bool] = True


class WaitDone(Event, frozen=True, tag="wait"):
    """The guest's wait for `count` deliveries of `vector` ended (`outcome`)."""

    vector: int
    outcome: str  # "done" or "timeout"
    count: int | None = None  # left out where a comparison ignores it (kvm storm's `decisive`)
    guest_visible: ClassVar[bool] = True


class Bugcheck(Event, frozen=True, tag="bugcheck"):
    code: int
    params: list[int]
    tsc: int | None = None
    guest_visible: ClassVar[bool] = True


class Fault(Event, frozen=True, tag="fault"):
    vector: int
    guest_visible: ClassVar[bool] = True


class End(Event, frozen=True, tag="end"):
    guest_visible: ClassVar[bool] = True


# --- what the hypervisor and the model record (not visible to the guest) ------------------------

class Accept(Event, frozen=True, tag="accept"):
    """KVM accepted an interrupt (`__apic_accept_irq`), by `path` (IRR, posted, NMI, dropped...)."""

    vector: int
    source: str
    path: str | None = None  # None in a replayed host trace


class Deliver(Event, frozen=True, tag="deliver"):
    """The CPU delivered `vector` `via` injection or virtual-interrupt delivery; `irr_was_set`
    says whether its IRR bit was set (a stale RVI delivers a vector whose IRR bit is clear)."""

    vector: int
    via: str | None = None  # "inject" or "virtual"; None where a host trace does not say
    irr_was_set: bool | None = None
    source: str | None = None  # a replayed host trace: the line it comes from


class Eoi(Event, frozen=True, tag="eoi"):
    vector: int | None = None
    source: str | None = None


class TprWrite(Event, frozen=True, tag="tpr"):
    """A TPR write seen in a replayed host trace (`vector` holds the new TPR)."""

    vector: int
    source: str | None = None


class SetLapic(Event, frozen=True, tag="set-lapic"):
    """KVM_SET_LAPIC: `before` is the snapshot before the push, the flat fields the one after."""

    before: dict[str, Any]


class Reset(Event, frozen=True, tag="reset"):
    """QEMU's system reset began (the vCPU has left the guest)."""

    vector: int | None = None  # a replayed host trace records 0 here
    source: str | None = None


class SnapshotTaken(Event, frozen=True, tag="snapshot"):
    """savevm: the APIC timer's state when QEMU saved the VM."""

    timer_armed: bool
    timer_vector: int
    timer_mode: str
    timer_remaining_ns: int
    tsc_deadline: int


class Restore(Event, frozen=True, tag="restore"):
    """loadvm: QEMU puts the APIC back (then the TSC deadline, if any)."""

    tsc: int
    tsc_deadline: int
    one_shot_tmcct_zero: bool
    text: str


class TimerAfterRestore(Event, frozen=True, tag="timer-after-restore"):
    armed: bool
    pending: bool
    text: str


class ApicvChange(Event, frozen=True, tag="apicv"):
    active: bool


class IpiIgnored(Event, frozen=True, tag="ipi-ignored"):
    vector: int
    delivery_mode: int


class Init(Event, frozen=True, tag="init"):
    """An INIT IPI reset this CPU's APIC (§10.4.7.3); it now waits for a start-up IPI."""


class Startup(Event, frozen=True, tag="startup"):
    """A start-up IPI with `vector` (the start page) started this CPU (§10.4.7.3)."""

    vector: int


class Sti(Event, frozen=True, tag="sti"):
    pass


class Cli(Event, frozen=True, tag="cli"):
    pass


class GuestNote(Event, frozen=True, tag="guest"):
    """A guest model's note (what its code does at this point), for the reader."""

    text: str


class Handler(Event, frozen=True, tag="handler"):
    """A guest interrupt handler ran for `vector` and did (`eoi`) or did not write the local
    APIC's EOI; `text` says whose handler it is. Explanations read the fields."""

    vector: int
    eoi: bool
    text: str


class Reboot(Event, frozen=True, tag="reboot"):
    text: str


class Panic(Event, frozen=True, tag="panic"):
    text: str


class WaitStart(Event, frozen=True, tag="wait-start"):
    text: str
    tsc: int | None = None
    deadline: int | None = None
    ticks: int | None = None


class ClockOk(Event, frozen=True, tag="clock-ok"):
    ticks: int
    tsc: int | None = None


class Choice(Event, frozen=True, tag="choice"):
    """An explorer's choice (which interleaving this run takes)."""

    text: str


class Timeout(Event, frozen=True, tag="timeout"):
    after_s: float | None = None
    reason: str | None = None


class VmStop(Event, frozen=True, tag="vm-stop"):
    reason: str


class AgentError(Event, frozen=True, tag="agent-error"):
    reason: str


class ModelStopped(Event, frozen=True, tag="model-stopped"):
    reason: str


class VmExit(Event, frozen=True, tag="vm-exit"):
    """The VM exit that ends a Bochs-VMX probe case (or the model's prediction of it): the vectors
    the guest took through virtual-interrupt delivery, in order, and the virtual-APIC state left
    behind — RVI and SVI (the guest interrupt status, SDM 3C §24.4.2), VPPR, and the virtual-APIC
    page's VIRR/VISR as the snapshot's `irr`/`isr` (§29.1.1) — with VTPR, the basic exit reason
    (18: VMCALL, Appendix C) and the vector of a guest exception that ended the case, if any."""

    delivered: tuple[int, ...] = ()
    rvi: int = 0  # always observed at a probe's exit
    svi: int = 0
    vppr: int = 0
    vtpr: int = 0
    exit_reason: int = 18
    exception: int | None = None

    @property
    def visr(self) -> int:
        """VISR as the 256-bit register the probe prints."""
        return _bits(self.isr)

    @property
    def virr(self) -> int:
        """VIRR as the 256-bit register the probe prints."""
        return _bits(self.irr)

    def fields(self) -> dict[str, object]:
        """The values a probe case is compared on, by name, in the order they are shown."""
        return {"delivered": self.delivered, "rvi": self.rvi, "svi": self.svi,
                "vppr": self.vppr, "visr": self.visr, "virr": self.virr,
                "exit_reason": self.exit_reason, "exception": self.exception}


def _bits(vectors: list[int] | None) -> int:
    return sum(1 << v for v in vectors or ())


Observation = (
    Interrupt | Read | WaitDone | Bugcheck | Fault | End | Accept | Deliver | Eoi | SetLapic
    | Reset | ApicvChange | IpiIgnored | Sti | Cli | GuestNote | Reboot | Panic | WaitStart
    | ClockOk | Choice | Timeout | VmStop | AgentError | ModelStopped | TprWrite | SnapshotTaken
    | Handler | Init | Startup
    | Restore | TimerAfterRestore | VmExit
)
KINDS: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls for cls in Observation.__args__
}
for _kind, _cls in KINDS.items():
    _cls.kind = _kind
GUEST_VISIBLE_KINDS = frozenset(kind for kind, cls in KINDS.items() if cls.guest_visible)
# The field names of each kind (the snapshot's included): the one schema, which case files'
# expectations are checked against (`apiclab.conform.case.EVENT_FIELDS`).
FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(cls.__struct_fields__) - {"time"} for kind, cls in KINDS.items()
}

_ENCODER = msgspec.json.Encoder(order="sorted")
# The canonical line is the standard library's canonical JSON (`json.dumps(..., sort_keys=True,
# separators=(",", ":"))`, non-ASCII escaped), which `trace_sha256` was defined on. msgspec writes
# the same bytes for ints, strings of ASCII, bools, lists and dicts; it writes some floats
# differently (1e-05 as 0.00001) and non-ASCII as UTF-8, so the kinds with a float field, and any
# line that came out non-ASCII, are written by the standard library instead.
_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


# The decoder and the kinds with a float field are worked out on first use, not at import: every
# model run imports this module, and building them (msgspec inspects every class's annotations)
# costs about as much as the rest of the import; only reading traces and hashing need them.
@cache
def _decoder() -> msgspec.json.Decoder[Event]:
    return msgspec.json.Decoder(Observation)


@cache
def _float_kinds() -> frozenset[type[Event]]:
    return frozenset(
        cls for cls in KINDS.values()
        if any("float" in str(hint) for hint in get_type_hints(cls).values())
    )


def from_dict(row: Mapping[str, Any]) -> Event:
    """The typed event of a `{"time", "kind", ...}` mapping, validated."""
    try:
        event: Event = msgspec.convert(dict(row), Observation)
    except msgspec.ValidationError as e:
        raise DecodeError(f"event {row.get('kind', '?')!s} at {row.get('time', '?')!s}: {e}") from None
    return event


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a plain mapping with `kind`, the fields it has (unobserved ones left out)."""
    out: dict[str, Any] = msgspec.to_builtins(event)
    return out


def fields_of(event: Event) -> dict[str, Any]:
    """The event's observed fields but `time` and `kind`, by name (JSON-ready values)."""
    out = to_dict(event)
    del out["time"], out["kind"]
    return out


def encode(event: Event) -> bytes:
    """Canonical JSON of one event: keys sorted, no spaces, absent fields left out, non-ASCII
    escaped as \\uXXXX (the standard library's canonical form, byte for byte)."""
    if type(event) in _float_kinds():
        return _STDLIB.encode(to_dict(event)).encode()
    line = _ENCODER.encode(event)
    if not line.isascii():
        return _STDLIB.encode(to_dict(event)).encode()
    return line


def encode_jsonl(events: Iterable[Event]) -> bytes:
    """JSON Lines of `events`, each line canonical (`encode`) and ending in \\n."""
    return b"".join([encode(e) + b"\n" for e in events])


def decode_jsonl(text: str | bytes, *, source: str = "trace") -> list[Event]:
    """Events from JSON Lines, each validated against its kind; a bad line raises DecodeError
    naming `source`, the line and what was wrong."""
    raw = text.encode() if isinstance(text, str) else text
    events: list[Event] = []
    decoder = _decoder()
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(decoder.decode(line))
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise DecodeError(f"{source} line {number}: {e}") from None
    return events
