"""The one adapter from a trace to a timeline story: lanes, spans, marks, markers and samples.

Every picture apiclab draws (the HTML timeline, the Perfetto JSON) reads a `Story`, never a trace:
this module is the only place that knows which event kinds carry which registers, so a change of
the trace's event shape changes this file alone.

What is read from the trace (the typed events of `apiclab.engine.events`): events that carry register snapshots
(`irr`, `isr`, `pir`, `tpr`, `ppr` or `rvi`/`svi`/`vppr`) give the state *after* the event; the
pending set of a vector is IRR ∪ PIR, its in-service set is ISR (VISR with APICv, SDM §29.1.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.engine import events as ev
from apiclab.engine.events import Event

# Step lines drawn as counters; PPR without APICv, VPPR with it (SDM §29.1.3).
REGISTERS = ("tpr", "ppr", "vppr", "rvi", "svi")
_SET_KEYS = ("irr", "isr", "pir")
_HEX_KEYS = frozenset({"vector", "rvi", "svi", "vppr", "ppr", "tpr"})

# Event kind → (marker kind, label); a label of None takes the event's own text.
_MARKERS: dict[str, tuple[str, str | None]] = {
    "reboot": ("reboot", "reset port written"),
    "reset": ("reset", "system reset"),
    "set-lapic": ("set-lapic", "KVM_SET_LAPIC"),
    "sti": ("sti", "STI"),
    "cli": ("cli", "CLI"),
    "wait-start": ("wait", None),
    "clock-ok": ("clock-ok", "clock tick seen"),
    "bugcheck": ("bugcheck", None),
    "panic": ("bugcheck", None),
    "snapshot": ("snapshot", "snapshot"),
    "restore": ("set-lapic", "restore"),
    "timeout": ("end", "time-out"),
    "vm-stop": ("end", None),
    "end": ("end", "end"),
    "fault": ("bugcheck", None),
}


@dataclass(frozen=True, slots=True)
class Span:
    """A vector pending (IRR/PIR), named by RVI alone (VIRR clear), or in service (ISR) from
    `start` to `end` (ns from the story's origin); `open_at_end` when still so at the end."""

    vector: int
    state: str  # "pending" | "rvi" | "service"
    start: int
    end: int
    open_at_end: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened to one vector at one instant: arrival, tick, delivery, EOI."""

    time: int
    kind: str  # "arrive" | "tick" | "deliver" | "eoi"
    vector: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class Marker:
    """Something that happened to the whole vCPU: reset, KVM_SET_LAPIC, STI/CLI, the HAL's wait
    and deadline, the bugcheck."""

    time: int
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Step:
    """One numbered link of the explanation chain, anchored at its instant."""

    number: int
    time: int
    name: str
    text: str


@dataclass
class Story:
    """One run of one vCPU on one executor, ready to draw. Times are ns since `origin_ns`."""

    title: str
    process: str  # the backend or profile: one Perfetto process each
    thread: str = "vCPU 0"
    group: str = ""  # stories of one group share their time axis (zoom one, all follow)
    origin_ns: int = 0
    start: int = 0  # negative when the story begins before its reboot
    end: int = 0
    lanes: list[int] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    samples: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcomes: list[bool] | None = None  # one per reboot, for a summary strip
    focus: tuple[int, int] | None = None  # the first view: where the story turns

    def registers_at(self, time: int) -> dict[str, Any]:
        """The registers last recorded at or before `time` (empty before the first)."""
        found: dict[str, Any] = {}
        for t, regs in self.samples:
            if t > time:
                break
            found = regs
        return found


def story_from_events(
    events: Sequence[Event],
    *,
    title: str,
    process: str,
    thread: str = "vCPU 0",
    group: str = "",
    explanation: Sequence[Mapping[str, Any]] = (),
    clock_vector: int | None = 0xD1,
    tsc_hz: int | None = None,
    notes: Iterable[str] = (),
    outcomes: Sequence[bool] | None = None,
) -> Story:
    """Read `events` (one run, in time order) into a story. `explanation` is a chain of
    {"step", "time_ns", "text"} links (`apiclab.report.explain`); `clock_vector` marks that
    vector's arrivals as ticks; `tsc_hz` places the HAL's deadline (found from the trace's own
    TSC readings when not given)."""
    origin = _origin(events)
    story = Story(title, process, thread, group, origin, notes=list(notes))
    if outcomes is not None:
        story.outcomes = list(outcomes)
    open_spans: dict[tuple[int, str], int] = {}
    previous: dict[str, Any] = {}
    hz = tsc_hz or _tsc_hz(events)
    for event in events:
        t = event.time - origin
        regs = _registers(event)
        _read_marker(story, event, t, hz)
        _read_mark(story, event, t, previous, regs, clock_vector)
        if regs:
            _advance_spans(story, open_spans, t, regs)
            previous = regs
            story.samples.append((t, regs))
    story.start = min((e.time - origin for e in events), default=0)
    story.end = max((e.time - origin for e in events), default=0)
    for (vector, state), start in sorted(open_spans.items(), key=lambda kv: kv[1]):
        story.spans.append(Span(vector, state, start, story.end, open_at_end=True))
    story.spans.sort(key=lambda s: (s.start, s.vector, s.state))
    story.markers.sort(key=lambda m: m.time)
    story.steps = [
        Step(i, int(link["time_ns"]) - origin, str(link.get("step", "")), str(link.get("text", "")))
        for i, link in enumerate(explanation, 1)
    ]
    story.lanes = _lanes(story, clock_vector)
    story.focus = _focus(story)
    return story


def _origin(events: Sequence[Event]) -> int:
    """Time zero: the reset-port write when there is one, so stories of one group line up at
    their reboot; else the first event."""
    for event in events:
        if event.kind in ("reboot", "reset"):
            return event.time
    return events[0].time if events else 0


def _registers(event: Event) -> dict[str, Any]:
    data = event.registers()
    if not any(k in data for k in _SET_KEYS):
        return {}
    regs: dict[str, Any] = {k: sorted(int(v) for v in data.get(k, ())) for k in _SET_KEYS}
    for key in REGISTERS:
        if key in data:
            regs[key] = int(data[key])
    return regs


def _advance_spans(
    story: Story, open_spans: dict[tuple[int, str], int], t: int, regs: Mapping[str, Any]
) -> None:
    pending = {*regs["irr"], *regs["pir"]}
    now = {(v, "pending") for v in pending}
    rvi = int(regs.get("rvi", 0))
    if rvi >= 16 and rvi not in pending:
        # RVI names a vector its VIRR bit does not hold: the stale state the seed is about; the
        # CPU delivers it all the same (SDM §29.2.2).
        now.add((rvi, "rvi"))
    now |= {(v, "service") for v in regs["isr"]}
    for key in [k for k in open_spans if k not in now]:
        start = open_spans.pop(key)
        if t > start:  # a vector taken at the instant it arrived leaves only its marks
            story.spans.append(Span(key[0], key[1], start, t))
    for key in now:
        open_spans.setdefault(key, t)


def _read_mark(
    story: Story,
    event: Event,
    t: int,
    previous: Mapping[str, Any],
    regs: Mapping[str, Any],
    clock_vector: int | None,
) -> None:
    if isinstance(event, ev.Accept):
        vector = event.vector
        kind = "tick" if vector == clock_vector else "arrive"
        story.marks.append(Mark(t, kind, vector, event.source))
    elif isinstance(event, ev.Deliver):
        note = "delivered with its IRR bit clear" if event.irr_was_set is False else ""
        story.marks.append(Mark(t, "deliver", event.vector, note))
    elif isinstance(event, ev.Interrupt):
        # A guest program's handler entry, with what it read there: the delivery as the guest
        # saw it (the only one a real backend shows).
        story.marks.append(Mark(t, "deliver", event.vector, "handler entry"))
    elif isinstance(event, ev.Eoi):
        eoi_vector = event.vector
        if eoi_vector is None:  # without APICv the EOI clears the highest ISR bit (SDM §10.8.5)
            gone = set(previous.get("isr", ())) - set(regs.get("isr", ()))
            eoi_vector = max(gone) if gone else None
        if eoi_vector is not None:
            story.marks.append(Mark(t, "eoi", int(eoi_vector)))


def _read_marker(story: Story, event: Event, t: int, tsc_hz: int | None) -> None:
    kind = event.kind
    if isinstance(event, ev.Choice):  # an explored run says what it chose; the page lists it
        story.notes.append(event.text)
        return
    if isinstance(event, ev.Read):
        where = event.reg if event.reg is not None else (
            event.port if event.port is not None else event.addr)
        name = reg_name(event.reg) if event.reg is not None else f"{int(where or 0):#x}"
        story.markers.append(Marker(t, "read", f"read {name} = {event.value:#x}"))
        return
    if isinstance(event, ev.WaitDone):
        story.markers.append(
            Marker(t, "wait-end", f"wait for {event.vector:#04x}: {event.outcome}"))
        return
    if kind not in _MARKERS:
        return
    marker, label = _MARKERS[kind]
    if label is None:
        label = str(getattr(event, "text", None) or getattr(event, "reason", None) or kind)
    if isinstance(event, ev.Bugcheck):
        params = ", ".join(f"{int(p):#x}" for p in event.params)
        label = f"bugcheck {event.code:#x} ({params})"
    story.markers.append(Marker(t, marker, label))
    if isinstance(event, ev.WaitStart) and tsc_hz and event.ticks is not None:
        deadline = t + round(event.ticks * 1_000_000_000 / tsc_hz)
        story.markers.append(Marker(deadline, "deadline", "the HAL's deadline"))


def _tsc_hz(events: Sequence[Event]) -> int | None:
    """The TSC rate the trace itself shows: two events that carry a TSC reading."""
    stamped = [(e.time, tsc) for e in events if (tsc := getattr(e, "tsc", None)) is not None]
    if len(stamped) < 2 or stamped[-1][0] == stamped[0][0]:
        return None
    ticks = int(stamped[-1][1]) - int(stamped[0][1])
    return round(ticks * 1_000_000_000 / (stamped[-1][0] - stamped[0][0]))


def _lanes(story: Story, clock_vector: int | None) -> list[int]:
    """The vectors that matter: those ever pending or in service for a while, those the
    explanation names, and the clock. Others' marks stay in the data, drawn in one lane."""
    chosen = {s.vector for s in story.spans}
    chosen |= {m.vector for m in story.marks if m.kind == "deliver" and m.note}
    if clock_vector is not None and any(m.vector == clock_vector for m in story.marks):
        chosen.add(clock_vector)
    return sorted(chosen, reverse=True)  # high priority on top, as the SDM's IRR figures


def _focus(story: Story) -> tuple[int, int] | None:
    """The first view: from shortly before the first reset (or the first step) to the end, so a
    reader sees the reboot, not the seconds of healthy traffic before it."""
    anchors = [m.time for m in story.markers if m.kind in ("reboot", "reset", "cli")]
    anchors += [s.time for s in story.steps]
    if not anchors or story.end <= story.start:
        return None
    start = min(anchors)
    pad = max((story.end - start) // 50, 1)
    return max(story.start, start - pad), story.end + pad


def hex_registers(regs: Mapping[str, Any]) -> dict[str, str]:
    """Registers as a reader wants them at hover time: 0xE1, [0xD1, 0xE1]."""
    shown: dict[str, str] = {}
    for key, value in regs.items():
        if isinstance(value, list):
            shown[key.upper()] = "[" + ", ".join(f"{int(v):#04x}" for v in value) + "]"
        elif key in _HEX_KEYS:
            shown[key.upper()] = f"{int(value):#04x}"
    return shown
