"""The suite's results as a text matrix, a JSON document and an HTML page (written atomically)."""

from __future__ import annotations

import html
import json
from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.conform.runner import BackendRun, CaseResult, SuiteResult

MARK = {"agrees": "agrees", "differs": "DIFFERS", "not-run": "not-run"}


def show_event(event: dict[str, Any] | None) -> str:
    """One event as a line a reader of the SDM recognises (registers by name, vectors in hex)."""
    if event is None:
        return "(nothing)"
    parts = [str(event.get("kind"))]
    for key, value in event.items():
        if key in ("kind", "index"):
            continue
        if key == "reg" and isinstance(value, int):
            parts.append(f"reg={reg_name(value)}")
        elif isinstance(value, list):
            parts.append(f"{key}=[" + ",".join(_hex(v) for v in value) + "]")
        elif isinstance(value, dict):
            inner = ",".join(f"{k}={_hex(v)}" for k, v in value.items())
            parts.append(f"{key}={{{inner}}}")
        else:
            parts.append(f"{key}={_hex(value)}")
    return " ".join(parts)


def _hex(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    return str(value)


def matrix_text(result: SuiteResult) -> str:
    names = list(result.backends)
    width = max([len(c.case.name) for c in result.cases] + [4])
    sdm_width = max([len(c.case.sdm) for c in result.cases] + [3])
    lines = ["backends:"]
    for name, avail in result.backends.items():
        state = avail.detail if avail.available else f"not run: {avail.detail}"
        lines.append(f"  {name:<6} {state}")
    lines.append("")
    head = f"{'case':<{width}}  {'sdm':<{sdm_width}}  " + "  ".join(f"{n:<7}" for n in names)
    lines += [head, "-" * len(head)]
    for c in result.cases:
        cells = "  ".join(f"{MARK[c.outcome(n)]:<7}" for n in names)
        lines.append(f"{c.case.name:<{width}}  {c.case.sdm:<{sdm_width}}  {cells}")
    lines.append("")
    totals = []
    for n in names:
        counts = {k: sum(c.outcome(n) == k for c in result.cases) for k in MARK}
        totals.append(f"{n}: {counts['agrees']} agree, {counts['differs']} differ, "
                      f"{counts['not-run']} not run")
    lines.append("; ".join(totals))
    return "\n".join(lines)


def differences_text(result: SuiteResult) -> str:
    lines: list[str] = []
    for c in result.cases:
        for name, run in c.runs.items():
            if run.outcome == "differs" and run.verdict is not None:
                lines += _difference_lines(c, name, run)
            elif run.outcome == "not-run" and result.backends[name].available:
                lines.append(f"{c.case.name} on {name}: not run: {run.reason}")
    return "\n".join(lines)


def _difference_lines(c: CaseResult, name: str, run: BackendRun) -> list[str]:
    v = run.verdict
    assert v is not None
    head = f"{c.case.name} on {name} (SDM {c.case.sdm}), first difference at event {v.index}"
    lines = [head + (f" ({v.note})" if v.note else "") + ":"]
    expected = "(no more events)" if v.expected is None else show_event(v.expected)
    lines.append(f"  expected: {expected}")
    lines.append(f"  observed: {show_event(v.observed)}")
    for event in v.context:
        mark = ">" if event.get("index") == v.index else " "
        lines.append(f"   {mark} #{event.get('index')}: {show_event(event)}")
    return lines


def to_json(result: SuiteResult) -> dict[str, Any]:
    backends = {
        name: {"available": a.available, ("version" if a.available else "reason"): a.detail}
        for name, a in result.backends.items()
    }
    cases = []
    for c in result.cases:
        differences = []
        reasons = {}
        for name, run in c.runs.items():
            if run.outcome == "differs" and run.verdict is not None:
                differences.append({"backend": name, **run.verdict.as_dict(),
                                    "events": run.events, "evidence": run.evidence})
            elif run.outcome == "not-run":
                reasons[name] = run.reason
        cases.append({
            "case": c.case.name,
            "sdm": c.case.sdm,
            "description": c.case.description,
            "file": c.case.path,
            "results": {name: run.outcome for name, run in c.runs.items()},
            "seconds": {name: round(run.seconds, 3) for name, run in c.runs.items()},
            "not_run": reasons,
            "differences": differences,
        })
    return {"backends": backends, "cases": cases}


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.agrees{background:#dfd}.differs{background:#fcc}.not-run{background:#eee;color:#666}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}
"""


def to_html(result: SuiteResult) -> str:
    esc = html.escape
    names = list(result.backends)
    rows = []
    for c in result.cases:
        cells = "".join(
            f'<td class="{c.outcome(n)}" title="{esc(c.runs[n].reason)}">{c.outcome(n)}</td>'
            for n in names
        )
        rows.append(f'<tr><td><a href="#{esc(c.case.name)}">{esc(c.case.name)}</a></td>'
                    f"<td>{esc(c.case.sdm)}</td>{cells}</tr>")
    backend_items = "".join(
        f"<li><b>{esc(n)}</b>: {esc(a.detail if a.available else 'not run: ' + a.detail)}</li>"
        for n, a in result.backends.items()
    )
    details = []
    for c in result.cases:
        diffs = [
            "\n".join(_difference_lines(c, n, r))
            for n, r in c.runs.items()
            if r.outcome == "differs" and r.verdict is not None
        ]
        if diffs:
            details.append(f'<h3 id="{esc(c.case.name)}">{esc(c.case.name)} (SDM {esc(c.case.sdm)})'
                           f"</h3><p>{esc(c.case.description)}</p><pre>"
                           + esc("\n\n".join(diffs)) + "</pre>")
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>apiclab conform</title>"
        f"<style>{_CSS}</style></head><body><h1>APIC conformance: {len(result.cases)} cases</h1>"
        f"<ul>{backend_items}</ul><table><tr><th>case</th><th>SDM</th>{head}</tr>"
        + "".join(rows) + "</table><h2>Differences</h2>" + "".join(details)
        + "</body></html>\n"
    )


def dumps(doc: dict[str, Any]) -> str:
    # Compact: the document is for programs (jq, the acceptance check), and with every difference's
    # evidence it outgrew 128 KiB indented -- the largest single argument or environment string
    # Linux passes to a program (MAX_ARG_STRLEN), which is how shell scripts hand it on.
    return json.dumps(doc, separators=(",", ":"))
