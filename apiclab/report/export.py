"""`--timeline FILE.html` and `--perfetto FILE.json` for every command: check the paths before
the run, write both files atomically after it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apiclab.report.output import check_output_path, write_atomic

if TYPE_CHECKING:  # only named in annotations; `explore` runs that draw nothing skip its import
    from apiclab.report.story import Story


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--timeline", metavar="FILE.html",
        help="write the story as a self-contained HTML timeline (zoom, pan, registers on hover)",
    )
    parser.add_argument(
        "--perfetto", metavar="FILE.json",
        help="write the story as Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing)",
    )


def wanted(args: argparse.Namespace) -> bool:
    """Whether the user asked for a picture; checks the output paths now, before the run."""
    timeline, perfetto = getattr(args, "timeline", None), getattr(args, "perfetto", None)
    if timeline:
        check_output_path(timeline, "--timeline")
    if perfetto:
        check_output_path(perfetto, "--perfetto")
    return bool(timeline or perfetto)


def export(
    args: argparse.Namespace,
    stories: Sequence[Story],
    *,
    title: str,
    subtitle: str = "",
    vector_names: dict[int, str] | None = None,
) -> None:
    """Write what `args` asked for (`--timeline`, `--perfetto`)."""
    write_outputs(
        stories, timeline=getattr(args, "timeline", None), perfetto=getattr(args, "perfetto", None),
        title=title, subtitle=subtitle, vector_names=vector_names,
    )


def write_outputs(
    stories: Sequence[Story],
    *,
    timeline: str | None = None,
    perfetto: str | None = None,
    title: str = "apiclab timeline",
    subtitle: str = "",
    vector_names: dict[int, str] | None = None,
) -> None:
    """Write the stories as an HTML timeline and/or Perfetto JSON, each atomically. The drawing
    code is imported only here: runs without a picture never load jinja2."""
    if timeline:
        from apiclab.report.timeline import render_html

        html = render_html(stories, title=title, subtitle=subtitle, vector_names=vector_names)
        write_atomic(Path(timeline), html)
    if perfetto:
        from apiclab.report.perfetto import trace_events

        text = json.dumps(trace_events(stories), separators=(",", ":"))
        write_atomic(Path(perfetto), text)
