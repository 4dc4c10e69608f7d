"""The observation of a run: an ordered list of typed events, the one truth every report reads.

Every executor (the model, real KVM, QEMU, Bochs) records the same typed events
(`apiclab.engine.events`), so traces can be compared event by event and hashed for the
determinism invariant (docs/design.md, invariant 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from apiclab.engine import events as typed_events
from apiclab.engine.events import Event

__all__ = ["GUEST_VISIBLE", "Event", "Trace"]

# Event kinds a guest itself can see; a model run and a real run agree or differ on these. Which
# they are is a property of each event class (`apiclab.engine.events`).
GUEST_VISIBLE = typed_events.GUEST_VISIBLE_KINDS

E = TypeVar("E", bound=Event)


class Trace:
    """An append-only list of typed events with a canonical serialisation and digest.

    While `recording` is False, `record` builds and keeps nothing: a run that needs only its
    counts pays nothing for tracing. Callers that build costly event data (register snapshots)
    check `recording` first.
    """

    __slots__ = ("events", "recording")

    def __init__(self, events: Iterable[Event] = (), *, recording: bool = True) -> None:
        self.events: list[Event] = list(events)
        self.recording = recording

    def record(self, time: int, kind: type[E], **fields: Any) -> E | None:
        """Record a `kind` event (its class, e.g. `events.Deliver`) at `time` with `fields`;
        nothing is built while not recording."""
        if not self.recording:
            return None
        event = kind(time=time, **fields)
        self.events.append(event)
        return event

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def guest_visible(self) -> list[Event]:
        return [e for e in self.events if e.guest_visible]

    def to_jsonl(self) -> str:
        """One canonical JSON object per line (keys sorted, no spaces), each line ending in \\n."""
        return typed_events.encode_jsonl(self.events).decode()

    def digest(self) -> str:
        """SHA-256 of the canonical JSON-lines form: equal digests mean byte-identical traces."""
        import hashlib  # here, not at import: a run that never hashes does not load OpenSSL

        return hashlib.sha256(typed_events.encode_jsonl(self.events)).hexdigest()

    @classmethod
    def from_jsonl(cls, text: str | bytes, *, source: str = "trace") -> Trace:
        """A trace from JSON Lines (as `to_jsonl` writes them), every line validated against its
        event class; a bad line raises DecodeError naming `source` and the line."""
        return cls(typed_events.decode_jsonl(text, source=source))

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> Trace:
        """A trace from `{"time", "kind", ...}` mappings, each validated against its class."""
        return cls(typed_events.from_dict(row) for row in rows)
