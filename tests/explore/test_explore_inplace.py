"""The state-graph search expands a state by restoring a snapshot into one live model
(apiclab.explore.inplace). These tests check that this is exact: a world restored and stepped is,
over its whole object graph (every attribute of every object reachable from it, closures and the
engine's queue included), the world built by replaying the same path from the initial state.
"""

from __future__ import annotations

import gc
import random
import types
from enum import Enum
from typing import Any

import pytest

from apiclab.engine.events import Event, fields_of
from apiclab.explore import graph
from apiclab.explore.catalogue import CATALOGUE
from apiclab.explore.graph import World, explore_graph, replay
from apiclab.explore.properties import BUILTIN
from apiclab.explore.scenarios.reboot_steps import RebootWorld
from apiclab.hypervisor.profiles import RESET_RVI, Profile, get_profile

SEED = next(e for e in CATALOGUE if e.commit == RESET_RVI.commit)


def fingerprint(root: object) -> Any:
    """The object graph under `root` as a nested value, objects numbered in the order they are
    first met, so two graphs give equal fingerprints when they are the same shape with the same
    values (shared objects shared the same way)."""
    seen: dict[int, int] = {}
    alive: list[Any] = []  # every object numbered stays alive, so that no id() is reused

    def walk(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, str, bytes, Enum, Profile)):
            return x
        if isinstance(x, Event):
            return ("event", x.time, x.kind, walk(fields_of(x)))
        if id(x) in seen:
            return ("ref", seen[id(x)])
        seen[id(x)] = len(seen)
        alive.append(x)
        if isinstance(x, (list, tuple)):
            return (type(x).__name__, tuple(walk(v) for v in x))
        if isinstance(x, (set, frozenset)):
            return (type(x).__name__, tuple(sorted(walk(v) for v in x)))
        if isinstance(x, dict):
            return ("dict", tuple((walk(k), walk(v)) for k, v in x.items()))
        if isinstance(x, types.MethodType):
            return ("method", x.__func__.__qualname__, walk(x.__self__))
        if isinstance(x, types.FunctionType):
            cells = tuple(walk(c.cell_contents) for c in x.__closure__ or ())
            return ("function", x.__code__.co_qualname, x.__code__.co_firstlineno, cells)
        if isinstance(x, types.BuiltinFunctionType):
            return ("builtin", x.__qualname__, walk(x.__self__))
        if isinstance(x, types.GeneratorType):  # a process left waiting when a run ended
            frame = x.gi_frame
            where = None if frame is None else (frame.f_lasti, walk(dict(frame.f_locals)))
            return ("generator", x.gi_code.co_qualname, where)
        attrs = dict(vars(x)) if hasattr(x, "__dict__") else {}
        for klass in type(x).__mro__:
            slots = klass.__dict__.get("__slots__", ())
            # a class compiled by mypyc (APICLAB_NATIVE=1) lists its attributes here instead
            compiled = klass.__dict__.get("__mypyc_attrs__", ())
            for name in [slots] if isinstance(slots, str) else [*slots, *compiled]:
                if hasattr(x, name):
                    attrs[name] = getattr(x, name)
        return (type(x).__qualname__, tuple((k, walk(v)) for k, v in sorted(attrs.items())))

    return walk(root)


def check_exact(profile: Profile, *, sample: float, seed: int = 0,
                prop: str = "clock-tick") -> tuple[int, int]:
    """Run the search, and for a sample of its transitions compare the live world with a replay
    of the path from the start (recording register snapshots as the search does: not for a
    property that reads none). Returns (transitions, compared)."""
    rng = random.Random(seed)
    compared = 0
    registers = prop not in graph.REGISTER_FREE

    def visit(path: tuple[int, ...], world: World) -> None:
        nonlocal compared
        if rng.random() >= sample:
            return
        fresh = replay(RebootWorld, profile, True, path, registers=registers)
        assert fingerprint(world) == fingerprint(fresh), path
        assert world.key() == fresh.key()
        compared += 1

    result = explore_graph(RebootWorld, BUILTIN[prop], profile, True, family="reboot",
                           budget=600, visit=visit)
    return result.transitions, compared


def test_every_transition_to_the_counterexample_is_exact() -> None:
    transitions, compared = check_exact(get_profile(SEED.buggy), sample=1.0)
    assert compared == transitions > 300


def test_every_transition_is_exact_with_register_snapshots() -> None:
    """no-stuck-in-service reads the ISR of the events: that search records the snapshots."""
    assert "no-stuck-in-service" not in graph.REGISTER_FREE
    transitions, compared = check_exact(get_profile(SEED.buggy), sample=1.0,
                                        prop="no-stuck-in-service")
    assert compared == transitions > 300


def test_a_sample_of_the_proof_is_exact() -> None:
    """One transition in 40 of the whole proof (~800 of 31,884), every stage represented."""
    transitions, compared = check_exact(get_profile(SEED.fixed), sample=1 / 40)
    assert transitions > 30_000 and compared > 500


def test_a_restore_undoes_every_change() -> None:
    """Restoring a snapshot after stepping on (even through the reset and the boot, which replace
    objects and leave processes' callbacks behind) gives the snapshot's world again."""
    profile = get_profile(SEED.fixed)
    world = replay(RebootWorld, profile, True, (1, 8))
    before = fingerprint(world)
    snapshot = world.snapshot()
    for action in (0, 3, 0, 0, 1, 0, 0, 3):
        world.step(action)
    assert fingerprint(world) != before
    world.restore(snapshot)
    assert fingerprint(world) == before


def test_the_search_leaves_no_object_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search moves its long-lived snapshots out of the garbage collector's reach while it
    runs (gc.freeze) and hands everything back when it ends, on a violation too."""
    monkeypatch.setattr(graph, "FREEZE_EVERY", 64)  # the 503 transitions freeze 7 times
    frozen: list[int] = []

    def visit(path: tuple[int, ...], world: World) -> None:
        frozen.append(gc.get_freeze_count())

    result = explore_graph(RebootWorld, BUILTIN["clock-tick"], get_profile(SEED.buggy), True,
                           family="reboot", visit=visit)
    assert result.counterexample is not None
    assert max(frozen) > 0 and gc.get_freeze_count() == 0
