"""Properties a guest relies on, as named checks over one observation (a run's events).

A property reads only the trace (docs/design.md, invariant 2) and answers with the event at which
it breaks, or None. The four built-in ones are the guarantees whose loss the seed's BSOD and the
snapshot-restore fixes of docs/design.md §3 are about; users add their own in Python with
`--property module:function` or `--property path/to/file.py[:function]`. That imports and runs
the user's Python with the user's rights (it is code, not data): only give code you trust.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apiclab.engine import events as ev
from apiclab.engine.events import Event
from apiclab.errors import UserError

NS_PER_S = 1_000_000_000
WINDOWS_CLOCK_VECTOR = 0xD1  # Windows 7 x64's clock vector (docs/design.md §4, step 5)


@dataclass(frozen=True, slots=True)
class Violation:
    """Where and why a property broke: the index of the event in the trace, its time, a sentence."""

    index: int
    time: int
    text: str


Check = Callable[[Sequence[Event]], Violation | None]


@dataclass(frozen=True)
class Property:
    """A named check with a one-line statement and the scenario family that exercises it."""

    name: str
    summary: str
    check: Check
    family: str = "reboot"


def _at(events: Sequence[Event], index: int, text: str) -> Violation:
    return Violation(index, events[index].time if events else 0, text)


def clock_tick(
    events: Sequence[Event], *, vector: int = WINDOWS_CLOCK_VECTOR, within_ns: int = 3 * NS_PER_S
) -> Violation | None:
    """A clock tick arrives within 3 s of enabling interrupts.

    Each `wait-start` (the guest has enabled interrupts and waits for its clock, as
    `HalpWaitForPhase0ClockTick` does) must be followed by a delivery of the clock vector within
    the window. A trace that ends before the window closes is not judged.
    """
    for i, event in enumerate(events):
        if event.kind != "wait-start":
            continue
        closes = event.time + within_ns
        for j in range(i + 1, len(events)):
            later = events[j]
            if isinstance(later, ev.Deliver) and later.vector == vector:
                break
            if later.time > closes:
                return _at(
                    events, j,
                    f"no clock tick (vector {vector:#04x}) was delivered within "
                    f"{within_ns / NS_PER_S:g} s of enabling interrupts at {event.time / NS_PER_S:.6f} s",
                )
    return None


def no_stale_delivery(events: Sequence[Event]) -> Violation | None:
    """No vector is delivered whose IRR bit was clear.

    The `deliver` event records whether the vector's (V)IRR bit was set when the CPU took it;
    with virtual-interrupt delivery a stale RVI is taken anyway (SDM §29.2.2).
    """
    for i, event in enumerate(events):
        if isinstance(event, ev.Deliver) and event.irr_was_set is False:
            vector = event.vector
            return _at(
                events, i,
                f"vector {vector:#04x} was delivered although its IRR bit was clear "
                f"(RVI = {vector:#04x} was stale)",
            )
    return None


def no_stuck_in_service(
    events: Sequence[Event], *, limit_ns: int = NS_PER_S
) -> Violation | None:
    """No interrupt stays in service forever: no vector stays in the ISR longer than 1 s.

    Reads the ISR recorded with every register-carrying event; a vector is "in service since t"
    from the first event that shows it until the first that does not.
    """
    since: dict[int, int] = {}
    for i, event in enumerate(events):
        isr = event.isr
        if isr is None:
            continue
        since = {v: since.get(v, event.time) for v in isr}
        for vector, start in sorted(since.items()):
            if event.time - start > limit_ns:
                return _at(
                    events, i,
                    f"vector {vector:#04x} has been in service since {start / NS_PER_S:.6f} s "
                    f"({(event.time - start) / NS_PER_S:.3f} s, no EOI retired it)",
                )
    return None


def no_delivery_across_reset(events: Sequence[Event]) -> Violation | None:
    """No interrupt accepted before a reset is delivered after it.

    A system reset starts the guest afresh: every vector it is given afterwards must have been
    accepted after the `reset` event. A stale RVI (before 4114c27d450b) or a PIR left over from
    before the reset (before 967235d32032) breaks this.
    """
    reset_at: int | None = None
    accepted: set[int] = set()
    for i, event in enumerate(events):
        if event.kind == "reset":
            reset_at, accepted = i, set()
        elif reset_at is None:
            continue
        elif isinstance(event, ev.Accept):
            accepted.add(event.vector)
        elif isinstance(event, ev.Deliver):
            vector = event.vector
            if vector not in accepted:
                return _at(
                    events, i,
                    f"vector {vector:#04x} was delivered after the reset at "
                    f"{events[reset_at].time / NS_PER_S:.6f} s but accepted only before it",
                )
    return None


def restored_timer_fires(
    events: Sequence[Event], *, slack_ns: int = 500_000
) -> Violation | None:
    """A restored timer interrupt is not lost (nor late).

    For each `snapshot` whose LAPIC timer was armed, its vector must be delivered after the
    `set-lapic` that restores it, and no later than the time it still had to run at the snapshot
    (`timer_remaining_ns`, when recorded) plus `slack_ns` after the restore.
    """
    for i, event in enumerate(events):
        if not isinstance(event, ev.SnapshotTaken) or not event.timer_armed:
            continue
        vector = event.timer_vector
        mode = event.timer_mode
        restore = next((j for j in range(i + 1, len(events)) if events[j].kind == "set-lapic"), None)
        if restore is None:
            continue
        delivered = next(
            (j for j in range(restore + 1, len(events))
             if isinstance(d := events[j], ev.Deliver) and d.vector == vector),
            None,
        )
        if delivered is None:
            return _at(
                events, len(events) - 1,
                f"the {mode} timer armed at the snapshot (vector {vector:#04x}) was never "
                "delivered after KVM_SET_LAPIC restored it",
            )
        remaining: int | None = event.timer_remaining_ns
        late = events[delivered].time - events[restore].time - (remaining or 0)
        if remaining is not None and late > slack_ns:
            return _at(
                events, delivered,
                f"the {mode} timer (vector {vector:#04x}) had {remaining / 1e6:g} ms to run at the "
                f"snapshot but fired {late / 1e6:g} ms later than that after the restore",
            )
    return None


def _summary(check: Callable[..., Any]) -> str:
    doc = (check.__doc__ or "").strip()
    if not doc:  # a callable object's or an inherited docstring: inspect knows where to look
        import inspect  # not at import time: the built-in checks have their own docstrings

        doc = inspect.getdoc(check) or ""
    return doc.splitlines()[0].rstrip(".") if doc else ""


BUILTIN: dict[str, Property] = {
    p.name: p
    for p in (
        Property("clock-tick", _summary(clock_tick), clock_tick, "reboot"),
        Property("no-stale-delivery", _summary(no_stale_delivery), no_stale_delivery, "reboot"),
        Property(
            "no-stuck-in-service", _summary(no_stuck_in_service), no_stuck_in_service, "reboot"
        ),
        Property(
            "no-delivery-across-reset", _summary(no_delivery_across_reset),
            no_delivery_across_reset, "reboot",
        ),
        Property(
            "restored-timer-fires", _summary(restored_timer_fires), restored_timer_fires,
            "snapshot",
        ),
    )
}


def get_property(spec: str) -> Property:
    """A built-in property by name, or a user's: `module:function`, `file.py:function`, or
    `file.py` (its function `check`)."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if ":" not in spec and not spec.endswith(".py"):
        known = ", ".join(BUILTIN)
        raise UserError(
            f"--property: unknown property {spec!r}; known: {known}, or module:function, "
            "or file.py[:function]"
        )
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, ":", "check")
    function = _load_function(target, name or "check", spec)
    return Property(spec, _summary(function) or spec, _user_check(function, spec))


def _load_function(target: str, name: str, spec: str) -> Callable[..., Any]:
    # imported here, for a user's property only: a built-in one should not pay for them at start
    import importlib
    import importlib.util
    from pathlib import Path

    from apiclab.files import InputFileError, read_text

    try:
        if target.endswith(".py"):
            path = Path(target)
            try:
                read_text(path)  # a regular file of bounded UTF-8 text, not a FIFO or device
            except InputFileError as e:
                raise UserError(f"--property {spec}: {e}") from None
            module_spec = importlib.util.spec_from_file_location(f"_apiclab_user_{path.stem}", path)
            if module_spec is None or module_spec.loader is None:
                raise UserError(f"--property {spec}: cannot load {target} as Python")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except UserError:
        raise
    except (Exception, SystemExit) as e:  # a user's module may fail in any way, even exit
        raise UserError(f"--property {spec}: cannot import {target}: {_one_line(e)}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"--property {spec}: {target} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def _one_line(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


ANSWERS = "None or True (holds), False or a sentence (broken), or a Violation(index, time, text)"


def _checked_violation(answer: Violation, events: Sequence[Event], spec: str) -> Violation:
    """A user's Violation is used to index the trace and print a sentence: check its fields."""
    index, time, text = answer.index, answer.time, answer.text
    wrong = ""
    if isinstance(index, bool) or not isinstance(index, int):
        wrong = f"index {index!r} is not an integer"
    elif not 0 <= index < max(len(events), 1):  # an empty trace: index 0
        wrong = f"index {index} is not an event of the trace (0..{max(len(events) - 1, 0)})"
    elif isinstance(time, bool) or not isinstance(time, int):
        wrong = f"time {time!r} is not an integer (ns)"
    elif not isinstance(text, str):
        wrong = f"text {text!r} is not a string"
    if wrong:
        raise UserError(f"--property {spec}: the check returned a malformed Violation: {wrong}")
    return Violation(index, time, " ".join(text.split()) or "the property is broken")


def _user_check(function: Callable[..., Any], spec: str) -> Check:
    """Adapt a user's function: it gets the events and returns None or True (holds), False or a
    sentence (broken at the last event), or a `Violation`. If it raises, exits, or answers
    anything else, the user hears of it in one line (a UserError: exit 2, not a violation)."""

    def check(events: Sequence[Event]) -> Violation | None:
        try:
            answer = function(list(events))
        except (Exception, SystemExit) as e:  # the user's code may fail in any way, even exit
            raise UserError(f"--property {spec}: the check failed: {_one_line(e)}") from None
        if answer is None or answer is True:
            return None
        if isinstance(answer, Violation):
            return _checked_violation(answer, events, spec)
        if answer is False:
            text = "the property returned False"
        elif isinstance(answer, str):
            text = " ".join(answer.split()) or "the property returned an empty sentence"
        else:
            raise UserError(f"--property {spec}: the check returned {type(answer).__name__} "
                            f"{str(answer)[:80]!r}; expected {ANSWERS}")
        last = len(events) - 1
        return Violation(max(last, 0), events[last].time if events else 0, text)

    return check
