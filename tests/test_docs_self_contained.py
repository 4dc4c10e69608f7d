"""The project's docs, output and code cite only what the repository holds: no design notes kept
outside it, and every docs/ page a citation names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    + [p for p in (ROOT / "apiclab").rglob("*") if p.suffix in (".py", ".S", ".toml", ".md")]
)
OUTSIDE = re.compile(r"\.\./shared|SEMANTICS|ARCHITECTURE\.md|STYLE\.md")


def test_no_citation_points_outside_the_repository() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in FILES
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if OUTSIDE.search(line)]
    assert len(FILES) > 50 and offenders == []


def test_every_cited_docs_page_exists() -> None:
    cited = set()
    for path in FILES:
        cited |= set(re.findall(r"docs/([a-z_-]+\.md)", path.read_text(encoding="utf-8")))
    assert {"host.md", "design.md", "semantics.md"} <= cited
    missing = sorted(name for name in cited if not (ROOT / "docs" / name).is_file())
    assert missing == []
