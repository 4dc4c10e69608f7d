"""A level-triggered input still asserted when its handler EOIs comes back at once (SDM §10.8.5,
82093AA §3.2.4); handlers take no model time, so the run must stop as a storm, not hang."""

from __future__ import annotations

from pathlib import Path

from apiclab.conform.case import load_case
from apiclab.engine import events as ev
from apiclab.hypervisor.program_run import run_program

CASES = Path(__file__).parents[2] / "apiclab" / "conform" / "cases"


def test_a_level_input_that_stays_asserted_under_an_eoiing_handler_stops_as_a_storm(
        tmp_path: Path) -> None:
    text = (CASES / "ioapic-line-level-eoi-while-high-redelivers.toml").read_text()
    storm = text.replace("default_handler = { eoi = false, log = true }",
                         "default_handler = { eoi = true, log = true }")
    assert storm != text
    path = tmp_path / "storm.toml"
    path.write_text(storm)
    trace = run_program(load_case(path).program)
    last = trace.events[-1]
    assert isinstance(last, ev.ModelStopped) and "interrupt storm: vector 0x62" in last.reason
    taken = [e for e in trace.events if isinstance(e, ev.Interrupt) and e.vector == 0x62]
    assert len(taken) > 1_000  # it was taken over and over before the stop
