"""The interrupt story as one self-contained HTML page: inline SVG drawn by an inline script,
no network, readable from file:// (`--timeline FILE.html`).

Python renders the page with jinja2 (autoescaped: a case or scenario named `<script>` shows as
text) and embeds each story as JSON in a `<script type="application/json">` block, with `<`, `>`
and `&` escaped so no text can close the block. The script draws lanes, spans, marks, markers,
register step lines and the numbered explanation steps, and redraws on zoom and pan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from apiclab.report.story import Story, hex_registers

# Beyond this many reboots the outcome strip shows buckets (failures per bucket), not cells.
STRIP_CELLS = 2000


def story_json(story: Story) -> dict[str, Any]:
    """What the page's script needs of one story, compact (arrays, not objects, per item)."""
    return {
        "title": story.title,
        "process": story.process,
        "thread": story.thread,
        "group": story.group,
        "start": story.start,
        "end": story.end,
        "focus": list(story.focus) if story.focus else None,
        "lanes": story.lanes,
        "spans": [[s.vector, s.state, s.start, s.end, int(s.open_at_end)] for s in story.spans],
        "marks": [[m.time, m.kind, m.vector, m.note] for m in story.marks],
        "markers": [[m.time, m.kind, m.label] for m in story.markers],
        "samples": [[t, hex_registers(r), _levels(r)] for t, r in story.samples],
        "steps": [[s.number, s.time, s.name, s.text] for s in story.steps],
        "strip": _strip(story.outcomes) if story.outcomes is not None else None,
    }


def _levels(regs: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in regs.items() if not isinstance(v, list)}


def _strip(outcomes: Sequence[bool]) -> dict[str, Any]:
    """Reboot outcomes, summarised: healthy cycles are counted, not drawn one by one."""
    n = len(outcomes)
    size = max(1, -(-n // STRIP_CELLS))
    fails = [sum(1 for ok in outcomes[i : i + size] if not ok) for i in range(0, n, size)]
    return {"reboots": n, "bucket": size, "fails": fails, "total_fails": sum(fails)}


def _json_for_script(value: Any) -> str:
    """JSON safe inside <script>: `</script>`, `<!--` and `&` cannot appear literally."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    stories: Sequence[Story],
    *,
    title: str = "apiclab timeline",
    subtitle: str = "",
    vector_names: dict[int, str] | None = None,
    sections: Sequence[tuple[str, str]] = (),
    prelude: str = "",
) -> str:
    """One HTML page with every story; stories sharing a `group` share their time axis.
    `vector_names` labels known vectors (e.g. the guest's clock and IPI); `sections` are extra
    (heading, text) blocks shown above the timelines; `prelude` is HTML the caller has built and
    escaped itself (the conformance report's tables), placed above them as it is."""
    import jinja2  # lazily: only the commands that draw need it
    import markupsafe

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    pkg = resources.files("apiclab.report") / "templates"
    template = env.from_string((pkg / "timeline.html.j2").read_text(encoding="utf-8"))
    names = {f"{v:#04x}": name for v, name in sorted((vector_names or {}).items())}
    data = {"stories": [story_json(s) for s in stories], "vectorNames": names}
    return template.render(
        title=title,
        subtitle=subtitle,
        stories=stories,
        vector_names=names,
        sections=sections,
        prelude=markupsafe.Markup(prelude),
        css=(pkg / "timeline.css").read_text(encoding="utf-8"),
        script=(pkg / "timeline.js").read_text(encoding="utf-8"),
        data=_json_for_script(data),
    )
