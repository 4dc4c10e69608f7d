"""The results directory: the plan, then one file per finished task, each written atomically.

    DIR/campaign.json       what was asked (kind, params), the host kinds seen, the planned tasks
    DIR/tasks/<id>.json     one finished task: the task and what it returned, with its node
    DIR/candidates/<host>/  shrunk disagreements as candidate cases (random campaigns)
    DIR/result.json         the merged document, once every task is done

A task's file is named by its id and replaced whole (rename), so a task that ran twice (a retry
after its worker died, or a resume that met a result the dead driver never saw) is counted once,
and a reader never sees half a file. `--resume DIR` reads the plan back and runs only the tasks
without a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apiclab.campaign.tasks import Task
from apiclab.errors import UserError
from apiclab.files import write_atomic

FORMAT = 1


class ResultsDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = root / "campaign.json"
        self.tasks_dir = root / "tasks"

    def exists(self) -> bool:
        return self.manifest.exists()

    def create(self, kind: str, params: dict[str, Any], hosts: dict[str, Any],
               tasks: list[Task]) -> None:
        if self.exists():
            raise UserError(f"--results {self.root}: already holds a campaign; continue it with "
                            f"--resume {self.root}, or choose another directory")
        try:
            self.tasks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--results {self.root}: cannot create it ({e.strerror})") from None
        write_atomic(self.manifest, json.dumps({
            "format": FORMAT, "kind": kind, "params": params, "hosts": hosts,
            "tasks": [t.as_dict() for t in tasks],
        }, indent=1))

    def load(self) -> tuple[str, dict[str, Any], dict[str, Any], list[Task]]:
        """(kind, params, hosts, planned tasks) of the campaign in this directory."""
        try:
            doc = json.loads(self.manifest.read_text())
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            return (str(doc["kind"]), dict(doc["params"]), dict(doc["hosts"]),
                    [Task.from_dict(t) for t in doc["tasks"]])
        except FileNotFoundError:
            raise UserError(f"--resume {self.root}: no campaign there (no campaign.json)") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"--resume {self.root}: campaign.json is unreadable ({e})") from None

    def save_hosts(self, hosts: dict[str, Any]) -> None:
        """Record host kinds met on a resume, next to the ones planned with."""
        doc = json.loads(self.manifest.read_text())
        doc["hosts"] = {**hosts, **doc["hosts"]}
        write_atomic(self.manifest, json.dumps(doc, indent=1))

    def task_path(self, task_id: str) -> Path:
        return self.tasks_dir / f"{task_id}.json"

    def write(self, task: Task, result: dict[str, Any]) -> None:
        write_atomic(self.task_path(task.id),
                     json.dumps({"task": task.as_dict(), "result": result}))

    def results(self) -> dict[str, dict[str, Any]]:
        """Every finished task's result, by task id; leftovers of an interrupted write (dot
        files ending in .tmp) are not results and are removed."""
        out: dict[str, dict[str, Any]] = {}
        if not self.tasks_dir.is_dir():
            return out
        for stale in self.tasks_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        for path in sorted(self.tasks_dir.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                out[str(doc["task"]["id"])] = dict(doc["result"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise UserError(f"{path}: not a task result ({e}); remove it to rerun the task"
                                ) from None
        return out

    def save_candidate(self, host: str, name: str, text: str) -> Path:
        directory = self.root / "candidates" / host
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        write_atomic(path, text)
        return path

    def save_result(self, doc: dict[str, Any]) -> None:
        write_atomic(self.root / "result.json", json.dumps(doc, indent=1))
