"""The demo's timeline in a real browser: headless Chromium loads it from file://, draws it,
and zooms when the wheel turns."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from apiclab.guest.windows7 import Windows7Config
from apiclab.hypervisor.profiles import FIXED, PRE_FIX, get_profile
from apiclab.report.stories import guest_vector_names, reproduce_stories
from apiclab.report.timeline import render_html
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, run_storm

from .cdp import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`apiclab reproduce`'s runs (seed 1, fewer reboots), drawn, and the facts to find."""
    config = Windows7Config()
    results = [
        run_storm(get_profile(name), apicv=True, reboots=30, seed=1) for name in (PRE_FIX, FIXED)
    ]
    path = tmp_path_factory.mktemp("timeline") / "demo.html"
    stories = reproduce_stories(results, config, DEFAULT_TSC_HZ)
    path.write_text(render_html(stories, vector_names=guest_vector_names(config)), encoding="utf-8")
    events = results[0].first_failure
    assert events is not None
    origin = next(e.time for e in events if e.kind == "reboot")
    wait = next(e for e in events if e.kind == "wait-start")
    facts = {
        "stale_delivery": next(
            e.time for e in events if e.kind == "deliver" and not e.irr_was_set
        ) - origin,
        "first_tick": next(
            e.time for e in events
            if e.kind == "accept" and e.vector == 0xD1 and e.time > wait.time
        ) - origin,
        "end": events[-1].time - origin,
    }
    browser = Browser(CHROMIUM)
    try:
        page = browser.open(path.as_uri())
        yield page, facts
    finally:
        browser.close()


def _first_story(page, selector, attrs):
    script = (
        f"Array.from(document.querySelectorAll({json.dumps('#story-0 ' + selector)})).map(e => ({{"
        + ",".join(f"'{a}': e.getAttribute('{a}')" for a in attrs) + "}))"
    )
    return page.evaluate(script)


def test_the_stale_vector_is_in_service_from_its_delivery_to_the_end(demo):
    page, facts = demo
    lanes = {e["data-vector"] for e in _first_story(page, "text.lane-label", ["data-vector"])}
    assert {"0xe1", "0xd1"} <= lanes
    spans = _first_story(
        page, "rect.span[data-vector='0xe1'][data-state='service']",
        ["data-start", "data-end", "data-open"],
    )
    assert {"data-start": str(facts["stale_delivery"]), "data-end": str(facts["end"]),
            "data-open": "1"} in spans


def test_the_clock_is_pending_from_its_first_arrival_to_the_end(demo):
    page, facts = demo
    spans = _first_story(
        page, "rect.span[data-vector='0xd1'][data-state='pending']",
        ["data-start", "data-end", "data-open"],
    )
    assert {"data-start": str(facts["first_tick"]), "data-end": str(facts["end"]),
            "data-open": "1"} in spans


def test_the_bugcheck_comes_three_seconds_after_the_wait_began(demo):
    page, _ = demo
    times = {
        m["data-kind"]: int(m["data-time"])
        for m in _first_story(page, "g.marker", ["data-kind", "data-time"])
    }
    assert abs(times["bugcheck"] - times["wait"] - 3_000_000_000) < 1_000


def test_the_page_draws_something_and_logs_no_error(demo):
    page, _ = demo
    png = page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1000 and height >= 600
    pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
    assert len(set(pixels[::7])) >= 16, "the screenshot is (almost) one colour"
    assert page.console_errors() == []


def test_the_wheel_zooms_in_around_the_pointer(demo):
    page, _ = demo
    page.evaluate("document.querySelector('#story-0 svg.timeline').scrollIntoView()")
    box = page.evaluate(
        "(() => { const r = document.querySelector('#story-0 svg.timeline').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    view = "(() => { const s = document.querySelector('#story-0 svg.timeline');" \
        " return [+s.dataset.viewStart, +s.dataset.viewEnd]; })()"
    before = page.evaluate(view)
    page.wheel(box[0] + box[2] * 0.6, box[1] + box[3] / 2, -600)
    after = page.evaluate(view)
    assert after[1] - after[0] < (before[1] - before[0]) / 2
    assert before[0] <= after[0] and after[1] <= before[1]
    assert page.console_errors() == []


def _chunks(png: bytes, kind: bytes):
    i = 8
    while i + 8 <= len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        if png[i + 4 : i + 8] == kind:
            yield png[i + 8 : i + 8 + n]
        i += 12 + n


def test_hovering_shows_the_registers_at_that_instant(demo):
    page, _ = demo
    page.evaluate("document.querySelector('#story-0 svg.timeline').scrollIntoView()")
    box = page.evaluate(
        "(() => { const r = document.querySelector('#story-0 svg.timeline').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })()"
    )
    page.send("Input.dispatchMouseEvent", {
        "type": "mouseMoved", "x": box[0] + box[2] * 0.9, "y": box[1] + box[3] / 2,
    })
    tip = page.evaluate("document.querySelector('#story-0 .tip').textContent")
    assert tip.startswith("t = ")
    assert "SVI   0xe1" in tip and "RVI" in tip and "ISR   [0xe1]" in tip


def test_the_page_follows_a_dark_colour_scheme(demo):
    page, _ = demo
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    page.send("Emulation.setEmulatedMedia",
              {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        dark = page.evaluate(background)
    finally:
        page.send("Emulation.setEmulatedMedia",
                  {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    assert light == "rgb(255, 255, 255)" and dark != light
    assert sum(int(x) for x in dark[4:-1].split(",")) < 150
