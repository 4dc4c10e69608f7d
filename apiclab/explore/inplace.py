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

from collections.abc import Iterable
from typing import Any

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

# A snapshot: for objects with a `__dict__`, that dict (the same dict object for an object's whole
# life), the values saved and the containers among them by name (copied again at every restore,
# so the snapshot itself is never mutated by the run after it); then the same for objects with
# `__slots__`, with the object in place of its dict.
Saved = tuple[Any, dict[str, Any], tuple[tuple[str, Any], ...]]
Snapshot = tuple[tuple[Saved, ...], tuple[Saved, ...]]


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
    plain: list[Saved] = []
    slotted: list[Saved] = []
    for obj in objects:
        plan = _PLANS.get(type(obj))
        if plan is None or (plan.slots is None and len(obj.__dict__) != plan.size):
            plan = _plan(obj)
        if plan.slots is None:
            values = obj.__dict__.copy()
        else:
            values = {name: getattr(obj, name) for name in plan.slots}
        copies = []
        for name in plan.containers:
            value = values[name]
            if type(value) not in _CONTAINERS:  # a container attribute rebound to a non-container
                _PLANS[type(obj)] = _Plan(obj)
                return save(objects)
            copies.append((name, value.copy()))
        if plan.slots is None:
            plain.append((obj.__dict__, values, tuple(copies)))
        else:
            slotted.append((obj, values, tuple(copies)))
    return tuple(plain), tuple(slotted)


def restore(snapshot: Snapshot) -> None:
    """Put every object of `snapshot` back into the state it was saved in."""
    plain, slotted = snapshot
    for attrs, values, copies in plain:
        if len(attrs) != len(values):  # an attribute created after the snapshot
            attrs.clear()
        attrs.update(values)
        for name, value in copies:
            attrs[name] = value.copy()
    for obj, values, copies in slotted:
        for name, value in values.items():
            setattr(obj, name, value)
        for name, value in copies:
            setattr(obj, name, value.copy())
