"""The one writer of case files: a case (or a candidate) as TOML that `case.load_case` reads back.

The document is built as plain data (`case_to_dict`: the program through
`apiclab.guest.program.program_to_dict`, each expectation through `ExpectedEvent.as_dict`) and
serialised by `tomli-w`, which escapes every string TOML needs escaped (control characters,
quotes, backslashes) and writes integers of the whole u64 range; hand-built TOML missed control
characters. `tomli-w` writes no comments, so the few comment lines a candidate carries are put
above the document by `dumps`, each made safe for a TOML comment (one line, no control character).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apiclab.conform.case import Case
from apiclab.guest.program import Program, program_to_dict


def case_dict(name: str, sdm: str, description: str, program: Program,
              expect: Sequence[Mapping[str, Any]], absent: Iterable[int] = ()) -> dict[str, Any]:
    """The plain-data case document (the fields `case.case_from_dict` reads)."""
    doc: dict[str, Any] = {"name": name, "sdm": sdm, "description": description}
    vectors = sorted(absent)
    if vectors:
        doc["absent"] = vectors
    doc["program"] = program_to_dict(program)
    doc["expect"] = [dict(e) for e in expect]
    return doc


def case_to_dict(case: Case) -> dict[str, Any]:
    """A loaded case back as plain data; reading it again gives an equal case."""
    return case_dict(case.name, case.sdm, case.description, case.program,
                     [e.as_dict() for e in case.expect], case.absent)


def comment_line(text: str) -> str:
    """`text` as one TOML comment line: control characters (which a comment may not hold, and a
    newline would end it) are written as escapes."""
    safe = "".join(c if c == "\t" or (c >= " " and c != "\x7f") else json.dumps(c)[1:-1]
                   for c in text)
    return f"# {safe}".rstrip()


def dumps(doc: Mapping[str, Any], comments: Iterable[str] = ()) -> str:
    """The case file's text: comment lines, then the document as TOML."""
    import tomli_w  # only when a case is written: `conform` starts without it

    head = "".join(comment_line(c) + "\n" for c in comments)
    return head + ("\n" if head else "") + tomli_w.dumps(doc)
