"""Files the user names: inputs read within bounds, outputs checked before a run starts.

Every input is a regular file of at most `MAX_INPUT_BYTES` of UTF-8 text: a FIFO would block the
read forever, a link to /dev/zero would never end, a directory or device is a mistake. The file is
opened without blocking (O_NONBLOCK) and judged by `fstat` of the open descriptor, so what is
checked is what is read.

Every output is checked before the work that produces it, so a run of minutes is not lost to a
path that could never be written; the write itself is atomic (`write_atomic`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from apiclab.errors import UserError

MAX_INPUT_BYTES = 1 << 20  # 1 MiB: a case or scenario file is a few KiB


class InputFileError(UserError):
    """A file given as input that cannot be read as bounded UTF-8 text; names the file."""


class OutputPathError(UserError):
    """An output path that cannot be written; names the flag and the path."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: Path | str, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` bytes, or InputFileError."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputFileError(f"{path}: is {_kind(mode)}, expected a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > max_bytes:
        raise InputFileError(f"{path}: larger than {max_bytes} bytes; not an apiclab input")
    return data


def read_text(path: Path | str, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of a regular file of at most `max_bytes` bytes of UTF-8, or InputFileError."""
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputFileError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at "
                             f"offset {e.start})") from None


def _writable_dir(directory: Path, flag: str, path: Path) -> None:
    if not directory.is_dir():
        raise OutputPathError(f"{flag} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: cannot create files in {directory}")


def check_output_file(path: Path, flag: str) -> None:
    """`path` can be (re)written as a file: it is not a directory or device, and its directory
    exists and is writable."""
    if path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a directory; give a file name")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as e:
            raise OutputPathError(f"{flag} {path}: {e.strerror}") from None
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"{flag} {path}: is {_kind(mode)}, expected a file to write")
    _writable_dir(path.parent, flag, path)


def check_output_dir(path: Path, flag: str) -> None:
    """`path` is a writable directory, or can be created (its nearest existing ancestor is a
    writable directory)."""
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputPathError(f"{flag} {path}: exists and is not a directory")
        _writable_dir(path, flag, path)
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{flag} {path}: {ancestor} is not a directory")
    _writable_dir(ancestor, flag, path)


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader sees the old file or the whole new one, never a part."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise OutputPathError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"{path}: cannot write ({e.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
