"""The typed events are the schema of every trace the model records: each recorded event converts
to its class and back unchanged, bad input is refused in one line, and guest-visibility is a
class property the trace's filter agrees with."""

from __future__ import annotations

import json

import pytest

from apiclab.conform.case import EVENT_FIELDS, load_builtin
from apiclab.engine import events as ev
from apiclab.engine.choices import Choices
from apiclab.engine.trace import GUEST_VISIBLE, Trace
from apiclab.errors import DecodeError
from apiclab.explore.scenarios import activation, reboot, snapshot
from apiclab.hypervisor.machine import reset_image
from apiclab.hypervisor.profiles import get_profile
from apiclab.hypervisor.program_run import run_program
from apiclab.scenarios.win7_reboot import run_storm


def _model_events() -> list[ev.Event]:
    events: list[ev.Event] = []
    for case in load_builtin():
        for apicv in (False, True):
            events += run_program(case.program, lapic_image=reset_image(), apicv=apicv).events
    for name in ("kvm-3.17", "kvm-6.14"):
        result = run_storm(get_profile(name), apicv=True, reboots=2, seed=3)
        events += (result.first_failure or []) + (result.first_success or [])
        for scenario in (activation.run, reboot.run, reboot.run_bare_firmware, snapshot.run):
            for seed in range(4):
                events += scenario(get_profile(name), True, Choices(seed=seed)).events
    return events


def _stdlib_line(event: ev.Event) -> bytes:
    """The canonical line as `trace_sha256` was defined before the typed events: the standard
    library's JSON of {"time", "kind", **fields}, keys sorted, compact, non-ASCII escaped."""
    return json.dumps(ev.to_dict(event), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_every_recorded_event_is_typed_and_round_trips() -> None:
    events = _model_events()
    kinds = {e.kind for e in events}
    assert {"deliver", "set-lapic", "interrupt", "read", "reset", "end", "snapshot", "restore",
            "choice", "bugcheck", "handler"} <= kinds
    assert any(e.cpu is not None for e in events)  # programs for several CPUs are in the suite
    for event in events:
        assert isinstance(event, ev.KINDS[event.kind])
        # Every recorded field has its class's type: decoding its JSON validates it.
        assert ev.decode_jsonl(ev.encode(event)) == [event]


def test_the_canonical_bytes_are_the_standard_library_s() -> None:
    events = _model_events()
    events += [ev.Timeout(time=7, after_s=1e-05), ev.Timeout(time=8, after_s=2.5),
               ev.GuestNote(time=9, text="non-ASCII: é → ü"), ev.VmStop(time=10, reason="ü")]
    assert ev.encode_jsonl(events) == b"".join(_stdlib_line(e) for e in events)
    assert Trace(events).to_jsonl().isascii()


def test_jsonl_round_trip_is_canonical() -> None:
    trace = Trace(_model_events()[:200])
    text = ev.encode_jsonl(trace.events)
    assert ev.decode_jsonl(text) == trace.events
    assert Trace.from_jsonl(text).digest() == trace.digest()
    first = text.splitlines()[0]
    assert list(json.loads(first)) == sorted(json.loads(first)) and b" " not in first


def test_a_trace_not_recording_builds_nothing() -> None:
    trace = Trace(recording=False)
    assert trace.record(5, ev.Deliver, vector=0xD1) is None and trace.events == []


def test_deliver_keeps_via_and_irr_and_registers() -> None:
    typed = ev.from_dict({"time": 5, "kind": "deliver", "vector": 0xD1, "via": "virtual",
                          "irr_was_set": False, "rvi": 0xD1, "irr": []})
    assert isinstance(typed, ev.Deliver) and not typed.irr_was_set and typed.via == "virtual"
    assert typed.registers() == {"rvi": 0xD1, "irr": []}


@pytest.mark.parametrize("line, what", [
    (b'{"time":1,"kind":"deliver","vector":"x","via":"inject","irr_was_set":true}', "$.vector"),
    (b'{"time":1,"kind":"no-such-kind"}', "no-such-kind"),
    (b'{"time":1,"kind":"end","extra":1}', "extra"),
    (b'{"kind":"end"}', "time"),
    (b'{"time":1,"kind":"end"', "trace line 1"),
])
def test_bad_lines_are_refused_in_one_line(line: bytes, what: str) -> None:
    with pytest.raises(DecodeError) as info:
        ev.decode_jsonl(line)
    message = str(info.value)
    assert what in message and "\n" not in message and message.startswith("trace line 1")


def test_case_files_expect_only_fields_the_event_classes_have() -> None:
    for kind, fields in EVENT_FIELDS.items():
        assert fields <= set(ev.KINDS[kind].__struct_fields__), kind



def test_guest_visibility_is_a_class_property() -> None:
    assert ev.GUEST_VISIBLE_KINDS == GUEST_VISIBLE
    assert ev.Interrupt.guest_visible and not ev.Deliver.guest_visible
