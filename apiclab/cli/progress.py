"""Progress on standard error, shown only on a terminal: a one-line bar (`Progress`) and one bar
per backend (`BackendProgress`, drawn with rich, which is imported only when a terminal will show
it, so that `apiclab --help` and piped runs do not pay for it)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = done * 100 // self.total
        if percent == self._last:
            return
        self._last = percent
        width = 30
        filled = width * done // self.total
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last >= 0:
            self.stream.write("\r" + " " * (len(self.label) + 50) + "\r")
            self.stream.flush()


class BackendProgress:
    """One bar per backend, "kvm  ━━━━━━━━━━  12/58 cases  0:00:04", on standard error while the
    block runs, only when that is a terminal; the bars are erased at the end, leaving the output
    clean. `start` and `advance` may be called from worker threads (rich locks its own state)."""

    def __init__(self, unit: str, stream: TextIO | None = None) -> None:
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._bars: Any = None  # rich.progress.Progress while the block runs on a terminal
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> BackendProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=True)
            self._bars.start()
        return self

    def start(self, backend: str, total: int) -> None:
        if self._bars is not None:
            # the differential mode's last phase shrinks one program of each kind
            unit = "kinds" if backend == "shrink" else self.unit
            self._tasks[backend] = self._bars.add_task(backend, total=total, unit=unit)

    def advance(self, backend: str) -> None:
        if self._bars is not None and backend in self._tasks:
            self._bars.advance(self._tasks[backend])

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
