"""Writing generated files: the path is checked before the run, the file written atomically.

A run that fails or is interrupted leaves no half-written file behind: the text goes to a
temporary file in the same directory, then `os.replace` puts it in place in one step.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from apiclab.errors import UserError


def check_output_path(path: str, flag: str) -> Path:
    """Refuse before a long run what cannot be written afterwards: a missing or unwritable
    directory, or a path that is a directory."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: directory {parent} is not writable")
    return target


def write_atomic(path: Path, text: str) -> None:
    import tempfile  # here: it pulls in shutil, random and the compressors, ~5 ms at every start

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
