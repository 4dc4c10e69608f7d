"""Tasks and the registry of task kinds.

A task is one unit of work that Ray schedules: its id names it in the results directory (so a
retried or resumed task replaces nothing and is counted once), its `host` says which kind of host
must run it (None: any node, for pure model work), and its params are JSON so the plan can be
stored and resumed. A task kind plans a campaign's tasks, runs one task on a worker, may plan
follow-up tasks from the first results (shrinking a disagreement where it was seen), and merges
all results into one document. Adding a kind is one module with these five functions and one
`register()` line in `apiclab.campaign.kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Hosts = Mapping[str, Mapping[str, Any]]  # host kind -> its description (`nodes.describe`)
Results = Mapping[str, Mapping[str, Any]]  # task id -> what its run returned (plus "node")


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    params: dict[str, Any]
    host: str | None = None  # the host kind that must run it; None: any node
    resources: dict[str, float] = field(default_factory=dict)  # Ray custom resources it takes

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": self.params, "host": self.host,
                "resources": self.resources}

    @staticmethod
    def from_dict(doc: Mapping[str, Any]) -> Task:
        return Task(str(doc["id"]), str(doc["kind"]), dict(doc["params"]), doc.get("host"),
                    dict(doc.get("resources") or {}))


class TaskKind(Protocol):
    name: str

    def plan(self, params: Mapping[str, Any], hosts: Hosts) -> list[Task]:
        """The campaign's tasks, from its parameters and the host kinds present."""
        ...

    def run(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One task, on a worker; returns JSON-ready data."""
        ...

    def followups(self, params: Mapping[str, Any], tasks: list[Task],
                  results: Results) -> list[Task]:
        """Tasks that need the planned tasks' results first (deterministic in them)."""
        ...

    def merge(self, params: Mapping[str, Any], tasks: list[Task], results: Results,
              hosts: Hosts) -> dict[str, Any]:
        """One document from every finished task; the same results give the same document."""
        ...

    def text(self, doc: Mapping[str, Any]) -> str:
        ...


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[0, total) as consecutive [a, b) ranges of `size` (the last may be shorter)."""
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def default_chunk(total: int, workers: int) -> int:
    """About four chunks per worker, so a slow or retried one does not hold the rest up, but no
    more than 250 items, so a lost chunk costs little, and no fewer than 1."""
    return max(1, min(250, -(-total // max(1, 4 * workers))))
