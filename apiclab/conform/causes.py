"""One root cause behind many red cells: differences grouped by what the guest saw go wrong.

A backend that EOIs every interrupt as it injects it fails every case whose handler looks at ISR or
PPR; listing those cases one by one hides that they are one finding. Each difference is put under
the first cause its observed events show (the order below), judged on guest-visible events only,
so the grouping is the same for every backend:

1. a handler found its own vector out of ISR on entry — the vector was EOI'd at injection (SDM
   §10.8.4: acknowledging sets the ISR bit; §10.8.5: only the software's EOI clears it);
2. an interrupt the expectation has was not taken where it says (left pending or taken late:
   §10.8.3.1, §10.8.4, and vol. 3A §6.8.1 for the instruction boundary);
3. a register read back another value (one cause per register);
4. anything else, one cause per pair of event kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apiclab.arch.registers import reg_name
from apiclab.conform.runner import BackendRun, CaseResult, SuiteResult

EOI_AT_INJECTION = "eoi-at-injection"
NOT_TAKEN = "interrupt-not-taken"

_TITLES = {
    EOI_AT_INJECTION: (
        "a handler finds its own vector already out of ISR (PPR lowered): the interrupt was "
        "EOI'd as it was injected (SDM §10.8.4, §10.8.5)"
    ),
    NOT_TAKEN: (
        "an interrupt the SDM says is taken did not arrive there: left pending, or taken late "
        "(SDM §10.8.3.1, §10.8.4; vol. 3A §6.8.1)"
    ),
}


@dataclass
class CauseGroup:
    backend: str
    key: str
    title: str
    members: list[tuple[CaseResult, BackendRun]] = field(default_factory=list)


def cause_of(events: Sequence[Mapping[str, Any]], run: BackendRun) -> tuple[str, str]:
    """(key, title) of the cause a differing run shows first."""
    for event in events:
        if event.get("kind") == "interrupt" and "isr" in event:
            vector = event.get("vector")
            if vector is not None and vector not in event["isr"]:
                return EOI_AT_INJECTION, _TITLES[EOI_AT_INJECTION]
    verdict = run.verdict
    expected = (verdict.expected if verdict else None) or {}
    observed = (verdict.observed if verdict else None) or {}
    if expected.get("kind") == "interrupt" and observed.get("kind") != "interrupt":
        return NOT_TAKEN, _TITLES[NOT_TAKEN]
    if expected.get("kind") == observed.get("kind") == "read" and "reg" in observed:
        name = reg_name(int(observed["reg"])) if isinstance(observed["reg"], int) else observed["reg"]
        return f"read-{name}", f"{name} reads back a value the SDM does not give"
    key = f"{expected.get('kind', 'nothing')}->{observed.get('kind', 'nothing')}"
    return key, (
        f"expected {expected.get('kind', 'no more events')}, observed "
        f"{observed.get('kind', 'no more events')}"
    )


def group_differences(result: SuiteResult) -> list[CauseGroup]:
    """Per backend, its differences by cause, the largest group first."""
    groups: dict[tuple[str, str], CauseGroup] = {}
    for c in result.cases:
        for name, run in c.runs.items():
            if run.outcome != "differs":
                continue
            key, title = cause_of(run.events, run)
            group = groups.setdefault((name, key), CauseGroup(name, key, title))
            group.members.append((c, run))
    backends = list(result.backends)
    return sorted(groups.values(), key=lambda g: (backends.index(g.backend), -len(g.members), g.key))


def causes_text(groups: Sequence[CauseGroup]) -> str:
    """The grouping as terminal lines: per backend, each cause with its count and cases."""
    lines: list[str] = []
    backend = None
    for g in groups:
        if g.backend != backend:
            backend = g.backend
            mine = [x for x in groups if x.backend == backend]
            total = sum(len(x.members) for x in mine)
            lines.append(f"{backend}: {_plural(total, 'difference')}, {_plural(len(mine), 'cause')}")
        names = ", ".join(c.case.name for c, _ in g.members)
        lines.append(f"  {len(g.members):>3}  {g.title}")
        lines.append(f"       {names}")
    return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
