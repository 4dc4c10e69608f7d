"""The model's own `save_attrs`/`load_attrs` (what a search's snapshot takes of a compiled
object, apiclab.explore.inplace): every attribute comes back, containers in place."""

from __future__ import annotations

from typing import Any

from apiclab.engine.core import Handle
from apiclab.explore.scenarios.reboot_steps import RebootWorld
from apiclab.hypervisor.profiles import get_profile


def attribute_names(obj: object) -> list[str]:
    """Every attribute of `obj`: its `__dict__`, or what a compiled class lists."""
    if hasattr(obj, "__dict__"):
        return list(vars(obj))
    names: list[str] = []
    for klass in type(obj).__mro__:
        names += [n for n in klass.__dict__.get("__mypyc_attrs__", ()) if n not in names]
    return names


def changed(value: Any) -> Any:
    """Another value of a type the attribute accepts (compiled attributes check their type)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    if value is None:
        return None
    if isinstance(value, Handle):
        return Handle(0, lambda: None)
    return value  # a reference of a class of its own: checked by identity below


def flatten(values: tuple[Any, ...]) -> Any:
    for value in values:
        if type(value) is tuple:
            yield from flatten(value)
        else:
            yield value


def saving_objects() -> list[object]:
    world = RebootWorld(get_profile("kvm-3.19"), True)
    for action in (1, 0, 0, 2):  # an interrupt, a reboot, one arriving after the CLI
        world.step(action)
    return [o for o in world._stateful() if hasattr(type(o), "save_attrs")]


def test_the_classes_that_save_themselves_are_the_busy_ones() -> None:
    kinds = {type(o).__name__ for o in saving_objects()}
    assert {"Engine", "KvmVcpu", "LocalApic", "VirtualApic", "LapicTimer", "HpetComparator",
            "Pit", "Counter", "Ioapic"} <= kinds


def test_every_attribute_comes_back_and_containers_stay_the_same_objects() -> None:
    for obj in saving_objects():
        kind = type(obj).__name__
        names = attribute_names(obj)
        before = {name: getattr(obj, name) for name in names}
        copies = {name: (type(v)(v) if isinstance(v, (list, dict)) else v)
                  for name, v in before.items()}
        saved = obj.save_attrs()  # type: ignore[attr-defined]
        for name, value in before.items():
            if isinstance(value, list):
                value.append(object())  # changed in place, as a step changes a queue
            elif isinstance(value, dict) and value:
                value[next(iter(value))] = object()
            else:
                setattr(obj, name, changed(value))
        obj.load_attrs(saved)  # type: ignore[attr-defined]
        flat = list(flatten(saved))
        for name, value in before.items():
            # a reference (a callback, a device) is in the saved values as the object itself
            if not isinstance(value, (bool, int, list, dict, Handle)) and value is not None:
                assert any(v is value for v in flat), (kind, name)
            now = getattr(obj, name)
            assert now is value or (now == value and type(now) is type(value)), (kind, name)
            if isinstance(value, (list, dict)):
                assert now is value and now == copies[name], (kind, name)
