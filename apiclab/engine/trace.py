"""The observation of a run: an ordered list of typed events, the one truth every report reads.

Every executor (the model, real KVM, QEMU, Bochs) produces the same `Event` shape, so traces can
be compared event by event and hashed for the determinism invariant (docs/design.md, invariant 3).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from apiclab.engine import events as typed_events

# The canonical form of one event: keys sorted, no spaces. One encoder for every line, since
# building a new one per event (as `json.dumps` does) costs more than the encoding itself.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))

# Event kinds a guest itself can see; a model run and a real run agree or differ on these. Which
# they are is a property of each event class (`apiclab.engine.events`).
GUEST_VISIBLE = typed_events.GUEST_VISIBLE_KINDS


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened at `time` (virtual ns in the model, TSC-derived ns on real backends).

    `kind` names what happened ("interrupt", "deliver", "set-lapic", "bugcheck", ...); `data` holds
    the registers and values that explain it, as JSON-ready values.
    """

    time: int
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, **self.data}

    def typed(self) -> typed_events.Snapshot:
        """This event as its typed class (`apiclab.engine.events`), validated."""
        return typed_events.from_dict(self.as_dict())


class Trace:
    """An append-only list of events with a canonical serialisation and digest.

    While `recording` is False, `record` keeps nothing: a run that needs only its counts pays
    nothing for tracing. Callers that build costly event data (register snapshots) check
    `recording` first.
    """

    __slots__ = ("events", "recording")

    def __init__(self, events: Iterable[Event] = (), *, recording: bool = True) -> None:
        self.events: list[Event] = list(events)
        self.recording = recording

    def record(self, time: int, kind: str, **data: Any) -> Event | None:
        if not self.recording:
            return None
        event = Event(time, kind, data)
        self.events.append(event)
        return event

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def guest_visible(self) -> list[Event]:
        return [e for e in self.events if e.kind in GUEST_VISIBLE]

    def to_jsonl(self) -> str:
        """One canonical JSON object per line (keys sorted, no spaces), each line ending in \\n."""
        encode = _CANONICAL.encode
        return "".join([encode(e.as_dict()) + "\n" for e in self.events])

    def digest(self) -> str:
        """SHA-256 of the canonical JSON-lines form: equal digests mean byte-identical traces."""
        return hashlib.sha256(self.to_jsonl().encode()).hexdigest()

    def typed(self) -> list[typed_events.Snapshot]:
        """Every event as its typed class, validated (DecodeError names the first bad one)."""
        return [e.typed() for e in self.events]

    @classmethod
    def from_jsonl(cls, text: str | bytes, *, source: str = "trace") -> Trace:
        """A trace from JSON Lines (as `to_jsonl` writes them), every line validated against its
        event class; a bad line raises DecodeError naming `source` and the line."""
        return cls(Event(e.time, str(e.__struct_config__.tag), _data(e))
                   for e in typed_events.decode_jsonl(text, source=source))

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> Trace:
        events = []
        for row in rows:
            data = {k: v for k, v in row.items() if k not in ("time", "kind")}
            events.append(Event(int(row["time"]), str(row["kind"]), data))
        return cls(events)


def _data(event: typed_events.Snapshot) -> dict[str, Any]:
    row = typed_events.to_dict(event)
    del row["time"], row["kind"]
    return row
