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
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import attrgetter, getitem, itemgetter, methodcaller, setitem
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

# A snapshot: the objects with a `__dict__` and a copy of each one's dict; the layout of their
# types (`_Layout`: which attributes hold containers); a copy of each container; the objects with
# `__slots__`, their values and their containers; the engine's scheduled callbacks (`Handle`),
# whose only changing attribute is `cancelled` (their time and callback are set once, when they
# are scheduled), by their flags alone. A restore gives every object a fresh copy of its saved
# dict (`obj.__dict__ = copy`: one C-level copy per object, which also drops an attribute created
# after the snapshot) and of its containers, so the snapshot itself is never mutated by the run
# after it, with a few `map`s over these columns: it runs at C speed, not attribute by attribute.
Snapshot = tuple[
    tuple[object, ...], tuple[dict[str, Any], ...], "_Layout", tuple[Any, ...],
    tuple[tuple[object, tuple[str, ...], tuple[Any, ...], tuple[tuple[str, Any], ...]], ...],
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


class _Layout:
    """Where things are in a list of objects of given types: which have a `__dict__` (and the
    containers among their attributes), which have `__slots__`, which are scheduled callbacks.
    Worked out once per sequence of types, so a save is a few `map`s and `itemgetter`s."""

    __slots__ = ("handles", "names", "owners", "plain", "sizes", "slotted")

    def __init__(self, objects: list[object]) -> None:
        plans = [None if type(o) is Handle else _plan(o) for o in objects]
        plain = [i for i, p in enumerate(plans) if p is not None and p.slots is None]
        self.plain = _picker(plain)
        self.slotted = tuple((i, p) for i, p in enumerate(plans)
                             if p is not None and p.slots is not None)
        self.handles = _picker([i for i, p in enumerate(plans) if p is None])
        self.sizes = [plans[i].size for i in plain]  # type: ignore[union-attr]
        owners: list[int] = []
        names: list[str] = []
        for k, i in enumerate(plain):
            for name in plans[i].containers:  # type: ignore[union-attr]
                owners.append(k)
                names.append(name)
        self.owners = _picker(owners)
        self.names = tuple(names)


def _picker(indices: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The items at `indices` of a sequence, as a tuple (whatever their number)."""
    if not indices:
        return lambda items: ()
    if len(indices) == 1:
        index = indices[0]
        return lambda items: (items[index],)
    return itemgetter(*indices)


_LAYOUTS: dict[tuple[type, ...], _Layout] = {}
_CONTAINER_TYPES = frozenset(_CONTAINERS)


def save(objects: Iterable[object]) -> Snapshot:
    """The state of `objects` now."""
    objs = list(objects)
    types = tuple(map(type, objs))
    layout = _LAYOUTS.get(types)
    if layout is None:
        layout = _LAYOUTS[types] = _Layout(objs)
    plain = layout.plain(objs)
    dicts: tuple[dict[str, Any], ...] = tuple(map(vars, plain))
    if list(map(len, dicts)) != layout.sizes:  # an attribute added or removed since the plans
        _PLANS.clear()
        _LAYOUTS.pop(types)
        return save(objs)
    values: tuple[Any, ...] = tuple(map(getitem, layout.owners(dicts), layout.names))
    if not _CONTAINER_TYPES.issuperset(map(type, values)):  # a container attribute rebound
        _PLANS.clear()
        _LAYOUTS.clear()
        return save(objs)
    slotted = []
    for index, plan in layout.slotted:
        obj = objs[index]
        names = plan.slots or ()
        slot_values = tuple([getattr(obj, name) for name in names])
        kept = []
        for name in plan.containers:
            value = getattr(obj, name)
            if type(value) not in _CONTAINERS:
                _PLANS.clear()
                _LAYOUTS.clear()
                return save(objs)
            kept.append((name, value.copy()))
        slotted.append((obj, names, slot_values, tuple(kept)))
    handles: tuple[Handle, ...] = layout.handles(objs)
    return (plain, tuple(map(dict.copy, dicts)), layout, tuple(map(_COPY, values)),
            tuple(slotted), handles, tuple(map(_CANCELLED, handles)))


_CANCELLED = attrgetter("cancelled")


def restore(snapshot: Snapshot) -> None:
    """Put every object of `snapshot` back into the state it was saved in."""
    plain, saved, layout, values, slotted, handles, cancelled = snapshot
    fresh = tuple(map(dict.copy, saved))
    _drain(map(setitem, layout.owners(fresh), layout.names, map(_COPY, values)))
    _drain(map(setattr, plain, repeat("__dict__"), fresh))
    for obj, names, slot_values, containers in slotted:
        _drain(map(setattr, repeat(obj), names, slot_values))
        for name, value in containers:
            setattr(obj, name, value.copy())
    _drain(map(setattr, handles, repeat("cancelled"), cancelled))


_drain = deque[Any](maxlen=0).extend  # runs an iterator to its end, keeping nothing
