"""The conformance report's own part of the page: counts, causes, evidence, the matrix.

Every piece of text from a case or a backend passes through `html.escape` here; the timelines
below it are drawn by `apiclab.report.timeline`, which escapes its own text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.conform.causes import CauseGroup, group_differences
from apiclab.conform.runner import BackendRun, CaseResult, SuiteResult
from apiclab.report.story import Story

esc = html.escape
TRACEPOINTS_SHOWN = 40


def report_prelude(result: SuiteResult, stories: Sequence[Story]) -> str:
    first_story: dict[str, int] = {}
    for i, story in enumerate(stories):
        first_story.setdefault(story.group, i)
    groups = group_differences(result)
    parts = [
        _backends(result), _counts(result), _causes(groups),
        _matrix(result), _differences(groups, first_story),
    ]
    if stories:
        parts.append("<h2>Timelines</h2><p>Each difference's case on every backend that ran "
                     "it, on one time axis; the numbered step marks the first difference.</p>")
    return "".join(parts)


def _backends(result: SuiteResult) -> str:
    items = "".join(
        f"<li><b>{esc(n)}</b>: {esc(a.detail if a.available else 'not run: ' + a.detail)}</li>"
        for n, a in result.backends.items()
    )
    return f"<ul>{items}</ul>"


def _counts(result: SuiteResult) -> str:
    rows = []
    for name in result.backends:
        counts = {k: sum(c.outcome(name) == k for c in result.cases)
                  for k in ("agrees", "differs", "not-run")}
        rows.append(f"<tr><th>{esc(name)}</th><td class='agrees'>{counts['agrees']}</td>"
                    f"<td class='differs'>{counts['differs']}</td>"
                    f"<td class='not-run'>{counts['not-run']}</td></tr>")
    return ("<h2>Summary</h2><table class='counts'><tr><th>backend</th><th>agree</th>"
            "<th>differ</th><th>not run</th></tr>" + "".join(rows) + "</table>")


def _anchor(case: CaseResult, backend: str) -> str:
    return f"diff-{case.case.name}-{backend}"


def _causes(groups: Sequence[CauseGroup]) -> str:
    if not groups:
        return "<h2>Differences</h2><p>None: every backend that ran agrees on every case.</p>"
    items = []
    for g in groups:
        links = ", ".join(
            f"<a href='#{esc(_anchor(c, g.backend))}'>{esc(c.case.name)}</a>" for c, _ in g.members
        )
        items.append(f"<li><b>{esc(g.backend)}</b>, {len(g.members)} "
                     f"difference{'s' if len(g.members) != 1 else ''}: {esc(g.title)}"
                     f"<br><small>{links}</small></li>")
    return "<h2>Differences by cause</h2><ol class='causes'>" + "".join(items) + "</ol>"


def _matrix(result: SuiteResult) -> str:
    names = list(result.backends)
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = []
    for c in result.cases:
        cells = "".join(
            f"<td class='{c.outcome(n)}' title='{esc(c.runs[n].reason)}'>"
            + (f"<a href='#{esc(_anchor(c, n))}'>differs</a>" if c.outcome(n) == "differs"
               else c.outcome(n)) + "</td>"
            for n in names
        )
        rows.append(f"<tr><td>{esc(c.case.name)}</td><td>{esc(c.case.sdm)}</td>{cells}</tr>")
    return (f"<h2>Matrix</h2><table class='matrix'><tr><th>case</th><th>SDM</th>{head}</tr>"
            + "".join(rows) + "</table>")


def _differences(groups: Sequence[CauseGroup], first_story: dict[str, int]) -> str:
    from apiclab.conform.report import _difference_lines

    parts = []
    for g in groups:
        parts.append(f"<h2>{esc(g.backend)}: {esc(g.title)}</h2>")
        for c, run in g.members:
            story = first_story.get(c.case.name)
            link = f" <a href='#story-{story}'>timeline</a>" if story is not None else ""
            parts.append(
                f"<section class='difference' id='{esc(_anchor(c, g.backend))}'>"
                f"<h3>{esc(c.case.name)} on {esc(g.backend)} (SDM {esc(c.case.sdm)}){link}</h3>"
                f"<p>{esc(c.case.description)}</p>"
                f"<pre>{esc(chr(10).join(_difference_lines(c, g.backend, run)))}</pre>"
                + _evidence(run) + "</section>"
            )
    return "".join(parts)


def _evidence(run: BackendRun) -> str:
    """The registers the guest read back, and the backend's own evidence (KVM tracepoints...)."""
    reads = [_read(e) for e in run.events if e.get("kind") == "read" and "value" in e]
    out = []
    if reads:
        out.append("<p><b>Registers read back</b>: " + esc(", ".join(reads)) + "</p>")
    evidence = dict(run.evidence)
    tracepoints = evidence.pop("tracepoints", None)
    if isinstance(tracepoints, list) and tracepoints:
        shown = "\n".join(str(t) for t in tracepoints[:TRACEPOINTS_SHOWN])
        more = len(tracepoints) - TRACEPOINTS_SHOWN
        out.append(
            f"<details open><summary>KVM tracepoints ({len(tracepoints)})</summary><pre>"
            + esc(shown + (f"\n… {more} more in --json" if more > 0 else "")) + "</pre></details>"
        )
    evidence.pop("evidence_run_events", None)
    rest = {k: v for k, v in evidence.items() if v not in (None, "", [], {})}
    if rest:
        lines = "\n".join(f"{k}: {_brief(v)}" for k, v in rest.items())
        out.append(f"<details><summary>other evidence</summary><pre>{esc(lines)}</pre></details>")
    return "".join(out)


def _read(event: dict[str, Any]) -> str:
    if "reg" in event:
        where = reg_name(int(event["reg"]))
    elif "port" in event:
        where = f"port {int(event['port']):#x}"
    else:
        where = f"{int(event.get('addr', 0)):#x}"
    return f"{where} = {int(event['value']):#x}"


def _brief(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 600 else text[:600] + "…"
