"""`diagnose --timeline/--perfetto` on a kvm trace: the replayed registers as spans per vCPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import FIXTURES
from test_parsers import TRACE

from apiclab.report.perfetto import spans_from_trace_events


def test_a_trace_draws_e1_in_service_and_d1_pending_to_the_end(diagnose: Any,
                                                                tmp_path: Path) -> None:
    trace = tmp_path / "stuck.trace"
    trace.write_text(TRACE)
    out = tmp_path / "stuck.json"
    page = tmp_path / "stuck.html"
    run = diagnose(str(trace), "--perfetto", str(out), "--timeline", str(page))
    assert run.code == 1  # 0xD1 is held off by 0xE1
    spans = [s for found in spans_from_trace_events(json.loads(out.read_text())).values()
             for s in found]
    e1 = [s for s in spans if s.vector == 0xE1 and s.state == "service"]
    d1 = [s for s in spans if s.vector == 0xD1 and s.state == "pending"]
    # times are relative to the first register change, 0xE1's arrival (100.000002 s): pending
    # until the injection (100.000003 s), then in service to the end; 0xD1 pending from its
    # arrival (100.000004 s) to the end
    assert [(s.start, s.end, s.open_at_end) for s in spans if s.vector == 0xE1] == [
        (0, 1000, False), (1000, 3000, True)]
    assert [(s.start, s.open_at_end) for s in e1] == [(1000, True)]
    assert [(s.start, s.open_at_end) for s in d1] == [(2000, True)]
    html = page.read_text()
    assert "held off" in html and "0xe1 in service" in html


def test_a_snapshot_has_no_time_to_draw_and_nothing_is_written(diagnose: Any,
                                                                tmp_path: Path) -> None:
    page = tmp_path / "x.html"
    run = diagnose(str(FIXTURES / "qemu-tcg-stuck.txt"), "--timeline", str(page))
    assert run.code == 2 and "no time to draw" in run.err and run.err.count("\n") == 1
    assert not page.exists()
