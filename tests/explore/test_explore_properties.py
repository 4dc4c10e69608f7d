"""The built-in properties on hand-made traces, and loading a user's property."""

import textwrap
from pathlib import Path
from typing import Any

import pytest

from apiclab.engine.events import KINDS, Event
from apiclab.errors import UserError
from apiclab.explore.properties import (
    BUILTIN,
    Violation,
    clock_tick,
    get_property,
    no_delivery_across_reset,
    no_stale_delivery,
    no_stuck_in_service,
    restored_timer_fires,
)

S = 1_000_000_000


def ev(time: int, kind: str, **data: Any) -> Event:
    """An event of `kind` with `data` and the fields its class requires but the test does not
    care about."""
    required = {"text": "", "source": "device", "before": {}, "timer_vector": 0, "timer_mode": "",
                "timer_remaining_ns": 0, "tsc_deadline": 0, "timer_armed": False, "code": 0,
                "params": []}
    cls = KINDS[kind]
    filled = {k: v for k, v in required.items() if k in cls.__struct_fields__}
    return cls(time=time, **{**filled, **data})


def test_clock_tick_holds_when_the_clock_is_delivered_inside_the_window() -> None:
    events = [ev(0, "wait-start"), ev(S, "deliver", vector=0xD1), ev(4 * S, "end")]
    assert clock_tick(events) is None


def test_clock_tick_breaks_at_the_first_event_past_the_window() -> None:
    events = [ev(0, "wait-start"), ev(S, "deliver", vector=0xE1), ev(3 * S + 1, "bugcheck")]
    violation = clock_tick(events)
    assert violation is not None and violation == Violation(2, 3 * S + 1, violation.text)
    assert "0xd1" in violation.text


def test_clock_tick_does_not_judge_a_trace_that_ends_inside_the_window() -> None:
    assert clock_tick([ev(0, "wait-start"), ev(S, "end")]) is None


def test_no_stale_delivery_names_the_vector_delivered_with_irr_clear() -> None:
    events = [ev(0, "deliver", vector=0x51, irr_was_set=True),
              ev(5, "deliver", vector=0xE1, irr_was_set=False)]
    violation = no_stale_delivery(events)
    assert violation is not None and violation.index == 1 and "0xe1" in violation.text
    assert no_stale_delivery(events[:1]) is None


def test_no_stuck_in_service_breaks_only_after_the_limit() -> None:
    events = [ev(0, "deliver", vector=0xD1, isr=[0xD1]), ev(S, "eoi", isr=[0xD1]),
              ev(S + 1, "end", isr=[0xD1])]
    violation = no_stuck_in_service(events)
    assert violation is not None and violation.index == 2 and "0xd1" in violation.text
    retired = [ev(0, "deliver", vector=0xD1, isr=[0xD1]), ev(10, "eoi", isr=[]),
               ev(2 * S, "end", isr=[0xD1])]
    assert no_stuck_in_service(retired) is None


def test_no_delivery_across_reset_wants_each_delivered_vector_accepted_after_the_reset() -> None:
    fresh = [ev(0, "accept", vector=0xE1), ev(1, "reset"), ev(2, "accept", vector=0xE1),
             ev(3, "deliver", vector=0xE1)]
    assert no_delivery_across_reset(fresh) is None
    leftover = [ev(0, "accept", vector=0xE1), ev(1, "reset"), ev(2, "accept", vector=0xD1),
                ev(3, "deliver", vector=0xE1)]
    violation = no_delivery_across_reset(leftover)
    assert violation is not None and violation.index == 3 and "0xe1" in violation.text
    assert no_delivery_across_reset([ev(0, "deliver", vector=0xE1)]) is None  # no reset


def test_restored_timer_fires_needs_a_delivery_after_the_restore() -> None:
    snapshot = ev(0, "snapshot", timer_armed=True, timer_vector=0xEC, timer_mode="tsc-deadline")
    lost = [snapshot, ev(0, "deliver", vector=0xEC), ev(1, "set-lapic"), ev(2, "end")]
    violation = restored_timer_fires(lost)
    assert violation is not None and violation.index == 3
    kept = [snapshot, ev(1, "set-lapic"), ev(2, "deliver", vector=0xEC), ev(3, "end")]
    assert restored_timer_fires(kept) is None


def test_restored_timer_fires_also_breaks_when_the_timer_is_late() -> None:
    snapshot = ev(0, "snapshot", timer_armed=True, timer_vector=0xEC, timer_mode="one-shot",
                  timer_remaining_ns=1_000_000)
    on_time = [snapshot, ev(5, "set-lapic"), ev(5 + 1_400_000, "deliver", vector=0xEC)]
    assert restored_timer_fires(on_time) is None  # within the 0.5 ms slack
    late = [snapshot, ev(5, "set-lapic"), ev(5 + 2_000_000, "deliver", vector=0xEC)]
    violation = restored_timer_fires(late)
    assert violation is not None and violation.index == 2 and "1 ms later" in violation.text


def test_every_builtin_property_has_a_summary_and_a_family() -> None:
    assert set(BUILTIN) >= {"clock-tick", "no-stale-delivery", "no-stuck-in-service",
                            "restored-timer-fires", "no-delivery-across-reset"}
    for prop in BUILTIN.values():
        assert prop.summary and prop.family in ("reboot", "snapshot")


def test_a_user_property_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent('''
        def check(events):
            """No vector 0xe1 is ever accepted."""
            if any(e.kind == "accept" and getattr(e, "vector", None) == 0xE1 for e in events):
                return "0xe1 was accepted"
            return None
    '''))
    prop = get_property(str(path))
    assert prop.summary == "No vector 0xe1 is ever accepted"
    assert prop.check([ev(0, "accept", vector=0x51)]) is None
    violation = prop.check([ev(0, "accept", vector=0x51), ev(7, "accept", vector=0xE1)])
    assert violation == Violation(1, 7, "0xe1 was accepted")


def test_a_user_property_loads_from_a_module() -> None:
    prop = get_property("apiclab.explore.properties:no_stale_delivery")
    assert prop.check([ev(0, "deliver", vector=0xE1, irr_was_set=False)]) is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-property", "unknown property"),
        ("/nonexistent/x.py", "no such file"),
        ("apiclab.explore.properties:nope", "no function 'nope'"),
        ("apiclab.no_such_module:f", "cannot import"),
    ],
)
def test_bad_property_specs_are_user_errors(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        get_property(spec)
