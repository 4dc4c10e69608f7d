"""In-place snapshots of a running model, for the state-graph search (apiclab.explore.graph).

The model's objects hold callbacks and closures that point at each other (the engine's queue
calls the HPET, the HPET the IOAPIC and the vCPU), so they cannot be copied cheaply: a deep copy
costs more than re-running the run. They need not be copied either. A search works on one live
model; a snapshot is the value of every attribute of its stateful objects at one moment (plain
values and references, with the lists, dicts and sets among them copied), and restoring it writes
those values back into the same objects. Every reference a callback holds stays valid, because
the objects it points at are the same ones, now back in the earlier state.

Which objects are stateful is the world's to say (`RebootWorld._stateful`); the attributes are
not listed anywhere: every attribute of each object is saved, so an attribute added to a model
class later is carried without a change here. What is assumed of the model's classes: an
attribute that holds a list, dict or set holds one for the object's whole life (which attributes
are containers is worked out once per class), and the containers' elements are values or objects
listed as stateful themselves. `tests/explore/test_explore_inplace.py` checks
exactness: a world restored and stepped equals, attribute by attribute over its whole object
graph, the world built by replaying the same path from the start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import repeat
from operator import getitem, methodcaller, setitem
from typing import Any

from apiclab.engine.core import Handle

_CONTAINERS = (list, dict, set)


class _Plan:
    """How to save an object of one type: its attribute names (in `__dict__` or `__slots__`) and
    which of them hold containers. Worked out once per type and attribute count, so a save or a
    restore is a dict copy and a few container copies, not a walk over the attributes."""

    __slots__ = ("containers", "size", "slots")

    def __init__(self, obj: object) -> None:
        self.slots: tuple[str, ...] | None = None
        if hasattr(obj, "__dict__"):
            values = vars(obj)
        else:
            self.slots = tuple(n for n in _slots(type(obj)) if hasattr(obj, n))
            values = {name: getattr(obj, name) for name in self.slots}
        self.size = len(values)
        self.containers = tuple(k for k, v in values.items() if type(v) in _CONTAINERS)


_PLANS: dict[type, _Plan] = {}

# A snapshot: for objects with a `__dict__`, those dicts (the same dict object for an object's
# whole life), a copy of each, and their sizes; the containers among the values as three columns
# (dict, name, saved copy), copied again at every restore so the snapshot itself is never mutated
# by the run after it; then the objects with `__slots__`, their values and their containers; then
# the engine's scheduled callbacks (`Handle`), whose only changing attribute is `cancelled`
# (their time and callback are set once, when they are scheduled), by their flags alone. A
# restore is a few `map`s over these columns, so it runs at C speed, not attribute by attribute.
Snapshot = tuple[
    tuple[dict[str, Any], ...], tuple[dict[str, Any], ...], list[int],
    tuple[tuple[dict[str, Any], ...], tuple[str, ...], tuple[Any, ...]],
    tuple[tuple[object, dict[str, Any], tuple[tuple[str, Any], ...]], ...],
    tuple[Handle, ...], tuple[bool, ...],
]

_COPY = methodcaller("copy")


def _slots(cls: type) -> tuple[str, ...]:
    found: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        found += [slots] if isinstance(slots, str) else list(slots)
    return tuple(found)


def _plan(obj: object) -> _Plan:
    plan = _PLANS.get(type(obj))
    size = len(vars(obj)) if hasattr(obj, "__dict__") else -1
    if plan is None or (size >= 0 and plan.size != size):
        plan = _PLANS[type(obj)] = _Plan(obj)
    return plan


def save(objects: Iterable[object]) -> Snapshot:
    """The state of `objects` now."""
    dicts: list[dict[str, Any]] = []
    owners: list[dict[str, Any]] = []
    names: list[str] = []
    slotted: list[tuple[object, dict[str, Any], tuple[tuple[str, Any], ...]]] = []
    handles: list[Handle] = []
    for obj in objects:
        if type(obj) is Handle:
            handles.append(obj)
            continue
        plan = _PLANS.get(type(obj))
        if plan is None or (plan.slots is None and len(obj.__dict__) != plan.size):
            plan = _plan(obj)
        if plan.slots is None:
            attrs = obj.__dict__
            dicts.append(attrs)
            for name in plan.containers:
                owners.append(attrs)
                names.append(name)
            continue
        slot_values = {name: getattr(obj, name) for name in plan.slots}
        kept = []
        for name in plan.containers:
            value = slot_values[name]
            if type(value) not in _CONTAINERS:
                _PLANS[type(obj)] = _Plan(obj)
                return save(objects)
            kept.append((name, value.copy()))
        slotted.append((obj, slot_values, tuple(kept)))
    values: tuple[Any, ...] = tuple(map(getitem, owners, names))
    if any(type(value) not in _CONTAINERS for value in values):  # a container attribute rebound
        _PLANS.clear()
        return save(objects)
    saved = tuple(map(dict.copy, dicts))
    return (tuple(dicts), saved, list(map(len, saved)),
            (tuple(owners), tuple(names), tuple(map(_COPY, values))), tuple(slotted),
            tuple(handles), tuple(h.cancelled for h in handles))


def restore(snapshot: Snapshot) -> None:
    """Put every object of `snapshot` back into the state it was saved in."""
    dicts, saved, sizes, (owners, names, values), slotted, handles, cancelled = snapshot
    if list(map(len, dicts)) != sizes:  # an attribute created after the snapshot
        for attrs in dicts:
            attrs.clear()
    _drain(map(dict.update, dicts, saved))
    _drain(map(setitem, owners, names, map(_COPY, values)))
    for obj, kept, containers in slotted:
        for name, value in kept.items():
            setattr(obj, name, value)
        for name, value in containers:
            setattr(obj, name, value.copy())
    _drain(map(setattr, handles, repeat("cancelled"), cancelled))


_drain = deque[Any](maxlen=0).extend  # runs an iterator to its end, keeping nothing
