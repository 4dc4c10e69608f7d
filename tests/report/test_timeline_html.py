"""The HTML page: self-contained, text escaped, small even for a long storm."""

import json
import re

from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.report.story import story_from_events
from apiclab.report.timeline import render_html


def _story(title="t", text="x"):
    trace = Trace()
    trace.record(0, evt.Accept, vector=0xD1, source=text, irr=[0xD1], isr=[], tpr=0, ppr=0)
    trace.record(5, evt.Deliver, vector=0xD1, irr=[], isr=[0xD1], tpr=0, ppr=0xD0)
    trace.record(9, evt.Choice, text=text)
    chain = [{"step": "s", "time_ns": 5, "text": text}]
    return story_from_events(trace.events, title=title, process=title, explanation=chain)


def _data(html):
    block = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', html, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_names_and_texts_from_cases_render_as_text_not_markup():
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    html = render_html([_story(title=evil, text=evil)], title=evil, subtitle=evil)
    # Only the page's own two script elements; the name appears escaped in the markup.
    assert html.count("<script") == 2
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The inline JSON cannot close its <script> block, and still reads back the exact text.
    data = _data(html)
    assert data["stories"][0]["title"] == evil
    assert data["stories"][0]["steps"][0][3] == evil


def test_the_page_loads_nothing_from_elsewhere():
    html = render_html([_story()])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "<svg" in html and "@import" not in html


def test_a_page_with_no_story_still_renders():
    html = render_html([], title="nothing found")
    assert "nothing found" in html and _data(html)["stories"] == []


def test_a_thousand_reboot_timeline_stays_small(tmp_path):
    from apiclab.cli.main import main
    from apiclab.hypervisor.profiles import PRE_FIX

    out = tmp_path / "storm.html"
    assert main(["reproduce", "--reboots", "1000", "--profile", PRE_FIX,
                 "--timeline", str(out)]) == 0
    size = out.stat().st_size
    assert size < 5_000_000, f"{size} bytes"
    strip = _data(out.read_text(encoding="utf-8"))["stories"][0]["strip"]
    assert strip["reboots"] == 1000 and len(strip["fails"]) == 1000
