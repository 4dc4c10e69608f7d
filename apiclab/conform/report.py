"""The suite's results as a text matrix, a JSON document and an HTML page (written atomically)."""

from __future__ import annotations

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
    return "\n".join(lines)


def summary_text(result: SuiteResult) -> str:
    """Per backend, how many cases agree, differ or did not run: printed last, after the
    matrix and the differences, so that it is what a terminal shows when the run ends."""
    names = list(result.backends)
    count = f"{len(result.cases)} case" + ("" if len(result.cases) == 1 else "s")
    lines = [f"summary: {count} on {', '.join(names)}"]
    for n in names:
        counts = {k: sum(c.outcome(n) == k for c in result.cases) for k in MARK}
        line = (f"  {n}: {counts['agrees']} agree, {counts['differs']} differ, "
                f"{counts['not-run']} not run")
        if not result.backends[n].available:
            line += f" ({result.backends[n].detail})"
        lines.append(line)
    return "\n".join(lines)


def differences_text(result: SuiteResult) -> str:
    """The differences, grouped under the cause that explains them, with a summary first."""
    from apiclab.conform.causes import causes_text, group_differences

    groups = group_differences(result)
    lines: list[str] = []
    if groups:
        lines += ["by cause:", causes_text(groups), ""]
    for g in groups:
        lines.append(f"== {g.backend}: {g.title} ({len(g.members)})")
        for c, run in g.members:
            lines += _difference_lines(c, g.backend, run)
    for c in result.cases:
        for name, run in c.runs.items():
            if run.outcome == "not-run" and result.backends[name].available:
                lines.append(f"{c.case.name} on {name}: not run: {run.reason}")
    return "\n".join(lines).rstrip("\n")


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




def to_html(result: SuiteResult) -> str:
    """The report page: counts per backend, the differences grouped by cause with their evidence
    (KVM tracepoints, registers read back), the matrix, and each difference's timeline."""
    from apiclab.conform.html import report_prelude
    from apiclab.conform.timeline import difference_stories
    from apiclab.report.timeline import render_html

    stories = difference_stories(result)
    return render_html(
        stories, title=f"APIC conformance: {len(result.cases)} cases",
        subtitle="expected (SDM) vs each backend; timelines of every difference below",
        prelude=report_prelude(result, stories),
    )


def dumps(doc: dict[str, Any]) -> str:
    # Compact: the document is for programs (jq, the acceptance check), and with every difference's
    # evidence it outgrew 128 KiB indented -- the largest single argument or environment string
    # Linux passes to a program (MAX_ARG_STRLEN), which is how shell scripts hand it on.
    return json.dumps(doc, separators=(",", ":"))
