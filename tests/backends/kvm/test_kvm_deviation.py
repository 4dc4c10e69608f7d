"""Host-vs-model comparison, without a KVM: first difference, outcomes, EOI attribution."""

from __future__ import annotations

import os
from collections.abc import Mapping

from apiclab.backends.kvm.deviation import deviation, eoi_origins, outcome, trace_difference
from apiclab.backends.kvm.tracefs import parse
from apiclab.engine.trace import Trace
from apiclab.guest.program import End, Handler, Mode, Program


def trace(*rows: Mapping[str, object]) -> Trace:
    return Trace.from_dicts([{"time": i, **r} for i, r in enumerate(rows)])


TICK: Mapping[str, object] = {"kind": "wait", "vector": 0xD1, "count": 1, "outcome": "done"}
TIMEOUT: Mapping[str, object] = {"kind": "wait", "vector": 0xD1, "count": 0, "outcome": "timeout"}
BUGCHECK: Mapping[str, object] = {"kind": "bugcheck", "code": 0x5C, "params": [0x10B, 3, 0, 0]}
END: Mapping[str, object] = {"kind": "end"}


def test_outcomes() -> None:
    assert outcome(trace(TICK, END)) == "tick"
    assert outcome(trace(TIMEOUT, BUGCHECK, END)) == "bugcheck"
    assert outcome(trace({"kind": "timeout", "after_s": 1.0})) == "hang"


def test_times_do_not_count_and_the_first_differing_event_is_named() -> None:
    host = trace({"kind": "interrupt", "vector": 0xE1, "isr": [], "irr": [], "ppr": 0}, TICK,
                 END)
    model = trace({"kind": "interrupt", "vector": 0xE1, "isr": [0xE1], "irr": [], "ppr": 0xE0},
                  TIMEOUT, BUGCHECK, END)
    assert trace_difference(trace(TICK, END), Trace.from_dicts(
        [{"time": 99, **TICK}, {"time": 100, **END}])) is None
    diff = trace_difference(host, model)
    assert diff is not None and diff["index"] == 0 and diff["model"]["isr"] == [0xE1]


TRACE_TEXT = """# tracer: nop
          python-42      [001] d..1.   10.000001: kvm_apic: apic_write APIC_EOI = 0x0
          python-42      [001] d..1.   10.000002: kvm_eoi: apicid 0 vector 225
          python-42      [001] d..1.   10.000003: kvm_apic: apic_read APIC_PROCPRI = 0x0
          python-42      [001] d..1.   10.000004: kvm_apic: apic_write APIC_EOI = 0x0
          python-42      [001] d..1.   10.000005: kvm_eoi: apicid 0 vector 209
          python-42      [001] d..1.   10.000006: kvm_msr: msr_write 80b = 0x0
           other-7       [003] d..1.   10.000007: kvm_eoi: apicid 0 vector 48
"""


def test_tracefs_lines_parse_and_mark_our_own_threads() -> None:
    events = parse(TRACE_TEXT, {42})
    assert [(e.event, e.own) for e in events][-2:] == [("kvm_msr", True), ("kvm_eoi", False)]
    assert events[1].message == "apicid 0 vector 225" and events[1].time_s == 10.000002


def test_our_vms_pit_worker_counts_as_ours_and_another_vms_does_not() -> None:
    text = (f"   kvm-pit/{os.getpid()}-99   [000] d..1.   1.000001: kvm_set_irq: gsi 0 level 1 source 2\n"
            "   kvm-pit/1-98      [000] d..1.   1.000002: kvm_set_irq: gsi 0 level 1 source 2\n")
    assert [e.own for e in parse(text, {42})] == [True, False]


def test_an_eoi_without_the_guests_wrmsr_or_against_its_handler_is_kvms_own() -> None:
    program = Program((End(),), {0xD1: Handler(eoi=True), 0xE1: Handler(eoi=False)},
                      mode=Mode.X2APIC_REAL)
    tps = [e.as_dict() for e in parse(TRACE_TEXT, {42})]
    assert eoi_origins(tps, program) == {"kvm_eoi_vectors": [225, 209],
                                         "eoi_not_written_by_guest": [225]}


def test_deviation_carries_outcomes_registers_and_summary() -> None:
    program = Program((End(),), {0xE1: Handler(eoi=False)})
    host = trace({"kind": "interrupt", "vector": 0xE1, "isr": [], "irr": [], "ppr": 0}, TICK)
    model = trace({"kind": "interrupt", "vector": 0xE1, "isr": [0xE1], "irr": [], "ppr": 0xE0},
                  TIMEOUT, BUGCHECK)
    dev = deviation(host, model, host_lapic={"isr": [], "ppr": 0},
                    tracepoints=[e.as_dict() for e in parse(TRACE_TEXT, {42})], program=program)
    assert dev is not None
    assert dev["outcomes"] == {"host": "tick", "model": "bugcheck"}
    assert "ISR [0xe1] PPR 0xe0 in the model" in dev["summary"]
    assert "KVM EOI'd 0xe1" in dev["summary"]
    assert deviation(host, host, host_lapic={}, tracepoints=None, program=program) is None
