"""What a run is expected to show: guest-visible events, each with the fields that matter.

A field's expectation is an exact value (a list of vectors compared as a set), a range where
timing legitimately varies, a bit test, or any of several of these (where the SDM leaves a choice
open). `ExpectedEvent.matches` takes an observed event as a `{"kind", field: value}` row (the
guest-visible part of a typed event, `apiclab.engine.events.fields_of`). Case files state them in
TOML (`apiclab.conform.case` reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Exact:
    value: Any

    def matches(self, observed: Any) -> bool:
        if isinstance(self.value, list):
            return isinstance(observed, list | tuple) and sorted(observed) == sorted(self.value)
        return bool(observed == self.value)

    def describe(self) -> str:
        return _show(self.value)


@dataclass(frozen=True, slots=True)
class Range:
    low: int
    high: int

    def matches(self, observed: Any) -> bool:
        return isinstance(observed, int) and self.low <= observed <= self.high

    def describe(self) -> str:
        return f"{self.low:#x}..{self.high:#x}"


@dataclass(frozen=True, slots=True)
class Masked:
    mask: int
    value: int

    def matches(self, observed: Any) -> bool:
        return isinstance(observed, int) and observed & self.mask == self.value

    def describe(self) -> str:
        return f"& {self.mask:#x} == {self.value:#x}"


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Any of several matchers: where the SDM leaves a choice (a version, an ID) open."""

    options: tuple[Exact | Range | Masked, ...]

    def matches(self, observed: Any) -> bool:
        return any(o.matches(observed) for o in self.options)

    def describe(self) -> str:
        return "any of " + " | ".join(o.describe() for o in self.options)


FieldMatcher = Exact | Range | Masked | AnyOf


def _show(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | list):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return f"{value:#x}"


@dataclass(frozen=True)
class ExpectedEvent:
    kind: str
    fields: Mapping[str, FieldMatcher] = field(default_factory=dict)

    def matches(self, observed: Mapping[str, Any]) -> bool:
        if observed.get("kind") != self.kind:
            return False
        return all(k in observed and m.matches(observed[k]) for k, m in self.fields.items())

    def describe(self) -> str:
        parts = [f"{k}={m.describe()}" for k, m in self.fields.items()]
        return self.kind + (" " + " ".join(parts) if parts else "")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for k, m in self.fields.items():
            out[k] = _plain(m)
        return out


def _plain(m: FieldMatcher) -> Any:
    """A matcher as the TOML value that states it."""
    match m:
        case Exact(value=v):
            return v
        case Range(low=lo, high=hi):
            return {"min": lo, "max": hi}
        case Masked(mask=mask, value=v):
            return {"mask": mask, "value": v}
        case AnyOf(options=options):
            return {"any": [_plain(o) for o in options]}


