"""Generated files: refused early when they cannot be written, never left half-written."""

import os

import pytest

from apiclab.errors import UserError
from apiclab.report.output import check_output_path, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "t.html"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.html"]


def test_a_written_file_gets_the_usual_permissions(tmp_path):
    target = tmp_path / "t.json"
    write_atomic(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_path_in_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_output_path(str(tmp_path / "no" / "t.html"), "--timeline")
