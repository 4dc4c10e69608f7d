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
listed as stateful themselves. The busiest classes of the compiled model (`apiclab.native`), whose
attributes are otherwise read and written one by one through their descriptors, save and load
their attributes themselves in one call (`save_attrs`/`load_attrs`: 0.70x the instructions of a
proof of the seed's family): field reads and writes in C, containers saved as the object and a
copy of its contents and put back in place; tests/explore/test_saved_attrs.py changes each
attribute and sees it come back.
`tests/explore/test_explore_inplace.py` checks
exactness: a world restored and stepped equals, attribute by attribute over its whole object
graph, the world built by replaying the same path from the start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import call, getitem, itemgetter, methodcaller, setitem
from typing import Any

from apiclab.engine.core import Handle

_CONTAINERS = (list, dict, set)


class _Plan:
    """How to save an object of one type: its attribute names (in `__dict__` or `__slots__`) and
    which of them hold containers. Worked out once per type and attribute count, so a save or a
    restore is a dict copy and a few container copies, not a walk over the attributes."""

    __slots__ = ("containers", "dict_size", "size", "slots")

    def __init__(self, obj: object) -> None:
        self.slots: tuple[str, ...] | None = None
        has_dict = hasattr(obj, "__dict__")
        self.dict_size = len(vars(obj)) if has_dict else -1
        names = _slots(type(obj))
        if has_dict and not names:
            values = vars(obj)
        else:  # slots, or a compiled class's attributes, and those of a subclass's `__dict__`
            names += tuple(vars(obj)) if has_dict else ()
            self.slots = tuple(n for n in names if hasattr(obj, n))
            values = {name: getattr(obj, name) for name in self.slots}
        self.size = len(values)
        self.containers = tuple(k for k, v in values.items() if type(v) in _CONTAINERS)


_PLANS: dict[type, _Plan] = {}

# A snapshot: the objects with a `__dict__` and a copy of each one's dict; the slots of the
# objects with `__slots__` as two columns (object, value) beside the layout's names — of the
# engine's scheduled callbacks (`Handle`) only `cancelled`, their one attribute that changes (their
# time and callback are set once, when they are scheduled); every container among all these
# values (the list, dict or set object itself) and a copy of its contents; and the layout of the
# objects' types (`_Layout`). A restore gives every object with a `__dict__` a fresh copy of its
# saved dict (`obj.__dict__ = copy`: one C-level copy per object, which also drops an attribute
# created after the snapshot), sets the slots back, and puts each container's saved contents back
# into the container object the attribute held when the snapshot was taken (in place: nothing is
# allocated for the many that did not change). The snapshot itself is never mutated. Each of these
# is a `map` over a column, so a restore runs at C speed, not attribute by attribute.
Snapshot = tuple[
    tuple[object, ...], tuple[dict[str, Any], ...], "_Layout", tuple[Any, ...], tuple[Any, ...],
    tuple[object, ...], tuple[Any, ...], tuple[object, ...], tuple[tuple[Any, ...], ...],
]

_COPY = methodcaller("copy")
_SAVE_ATTRS = methodcaller("save_attrs")
_ALL = slice(None)


def _slots(cls: type) -> tuple[str, ...]:
    found: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        found += [slots] if isinstance(slots, str) else list(slots)
        # a class compiled by mypyc (apiclab.native) has no `__dict__`: its attributes are these
        found += [n for n in klass.__dict__.get("__mypyc_attrs__", ()) if n not in found]
    return tuple(found)


def _plan(obj: object) -> _Plan:
    plan = _PLANS.get(type(obj))
    size = len(vars(obj)) if hasattr(obj, "__dict__") else -1
    if plan is None or plan.dict_size != size:
        plan = _PLANS[type(obj)] = _Plan(obj)
    return plan


class _Layout:
    """Where things are in a list of objects of given types: which have a `__dict__`, which slots
    of which objects to keep (for a scheduled callback only `cancelled`), and the containers among
    their attributes (whose, and of which type). Worked out once per sequence of types, so a save
    or a restore is a few `map`s and `itemgetter`s."""

    __slots__ = ("dicts", "kinds", "lists", "loaders", "names", "natives", "owners", "plain",
                 "sets", "sizes", "slot_containers", "slot_names", "slot_owners")

    def __init__(self, objects: list[object]) -> None:
        # compiled objects that save and load their attributes themselves (`save_attrs`)
        natives = [i for i, o in enumerate(objects) if _saves_itself(o)]
        self.natives = _picker(natives)
        self.loaders = tuple(type(objects[i]).load_attrs for i in natives)  # type: ignore[attr-defined]
        objects = [None if i in natives else o for i, o in enumerate(objects)]
        plans = [None if type(o) is Handle or o is None else _plan(o) for o in objects]
        plain = [i for i, p in enumerate(plans) if p is not None and p.slots is None]
        self.plain = _picker(plain)
        self.sizes = [plans[i].size for i in plain]  # type: ignore[union-attr]
        slot_owners: list[int] = []
        slot_names: list[str] = []
        slot_containers: list[int] = []
        for i, p in enumerate(plans):
            if objects[i] is None:
                continue
            if p is None or p.slots is not None:
                for name in ("cancelled",) if p is None else p.slots or ():
                    if p is not None and name in p.containers:
                        slot_containers.append(len(slot_names))
                    slot_owners.append(i)
                    slot_names.append(name)
        self.slot_owners = _picker(slot_owners)
        self.slot_names = tuple(slot_names)
        self.slot_containers = _picker(slot_containers)
        owners: list[int] = []
        names: list[str] = []
        kinds: list[type] = []
        for k, i in enumerate(plain):
            for name in plans[i].containers:  # type: ignore[union-attr]
                owners.append(k)
                names.append(name)
                kinds.append(type(vars(objects[i])[name]))
        self.owners = _picker(owners)
        self.names = tuple(names)
        # the containers in slots follow those in dicts
        kinds += [type(getattr(objects[slot_owners[j]], slot_names[j])) for j in slot_containers]
        self.kinds = tuple(kinds)
        self.lists = _picker([j for j, kind in enumerate(kinds) if kind is list])
        self.dicts = _picker([j for j, kind in enumerate(kinds) if kind is dict])
        self.sets = _picker([j for j, kind in enumerate(kinds) if kind is set])


def _saves_itself(obj: object) -> bool:
    """Whether `obj` is compiled (no `__dict__`: `apiclab.native`) and saves and loads its
    attributes itself: one call instead of a look-up through a descriptor per attribute. An
    interpreted subclass (with a `__dict__`) is saved attribute by attribute, its own ones too."""
    return hasattr(type(obj), "save_attrs") and not hasattr(obj, "__dict__")


def _picker(indices: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The items at `indices` of a sequence, as a tuple (whatever their number)."""
    if not indices:
        return lambda items: ()
    if len(indices) == 1:
        index = indices[0]
        return lambda items: (items[index],)
    return itemgetter(*indices)


_LAYOUTS: dict[tuple[type, ...], _Layout] = {}


def save(objects: Sequence[object]) -> Snapshot:
    """The state of `objects` now."""
    types = tuple(map(type, objects))
    layout = _LAYOUTS.get(types)
    if layout is None:
        layout = _LAYOUTS[types] = _Layout(list(objects))
    plain = layout.plain(objects)
    dicts: tuple[dict[str, Any], ...] = tuple(map(vars, plain))
    if list(map(len, dicts)) != layout.sizes:  # an attribute added or removed since the plans
        return _replan(objects)
    slot_objects = layout.slot_owners(objects)
    slot_values = tuple(map(getattr, slot_objects, layout.slot_names))
    containers: tuple[Any, ...] = (tuple(map(getitem, layout.owners(dicts), layout.names))
                                   + layout.slot_containers(slot_values))
    if tuple(map(type, containers)) != layout.kinds:  # a container attribute rebound to another
        return _replan(objects)
    # `dict(d)`, not `d.copy()`: an object's first `vars()` gives a split dict (its keys shared with
    # its class's other instances), a copy of which is split too; once restored into the object,
    # CPython 3.11's attribute access specialized for instance dicts gives up on a split one
    # (LOAD_ATTR_WITH_HINT finds no value in the keys) and takes the generic path at every access,
    # which makes every step of the model about half as fast. `dict(d)` is a combined dict, and
    # the copies of it a restore hands out are combined too.
    natives = layout.natives(objects)
    return (plain, tuple(map(dict, dicts)), layout, containers,
            tuple(map(_COPY, containers)), slot_objects, slot_values, natives,
            tuple(map(_SAVE_ATTRS, natives)))


def _replan(objects: Sequence[object]) -> Snapshot:
    """An object's attributes are not what its plan says: work the plans out again."""
    _PLANS.clear()
    _LAYOUTS.clear()
    return save(objects)


def restore(snapshot: Snapshot) -> None:
    """Put every object of `snapshot` back into the state it was saved in."""
    plain, saved, layout, containers, contents, slot_objects, slot_values, natives, attrs = snapshot
    _drain(map(call, layout.loaders, natives, attrs))
    _drain(map(setattr, plain, repeat("__dict__"), map(dict.copy, saved)))
    _drain(map(setattr, slot_objects, layout.slot_names, slot_values))
    _drain(map(setitem, layout.lists(containers), repeat(_ALL), layout.lists(contents)))
    dicts = layout.dicts(containers)
    if dicts:
        _drain(map(dict.clear, dicts))
        _drain(map(dict.update, dicts, layout.dicts(contents)))
    sets = layout.sets(containers)
    if sets:
        _drain(map(set.clear, sets))
        _drain(map(set.update, sets, layout.sets(contents)))


_drain = deque[Any](maxlen=0).extend  # runs an iterator to its end, keeping nothing
