"""What a user sees from `apiclab conform`: progress on a terminal only, the summary last, and
`--random` writing candidate files only where `--candidates DIR` says."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import Silent

from apiclab.cli import conform_cmd
from apiclab.cli.main import main
from apiclab.cli.progress import BackendProgress
from apiclab.conform.backends import make_backend

TWO_CASES = ["--only", "ppr-from-tpr", "--only", "reset-svr"]


@pytest.fixture
def silent_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conform_cmd, "make_backend",
                        lambda name: Silent("qemu") if name == "qemu" else make_backend(name))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_output_ends_with_the_summary_after_the_differences(
        silent_qemu: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--backends", "model,qemu", *TWO_CASES]) == 0
    out = capsys.readouterr().out
    assert out.index("differences:") < out.index("summary: 2 cases on model, qemu")
    tail = out.rstrip("\n").splitlines()[-3:]
    assert tail == ["summary: 2 cases on model, qemu",
                    "  model: 2 agree, 0 differ, 0 not run",
                    "  qemu: 0 agree, 2 differ, 0 not run"]


def test_progress_shows_each_backends_cases_on_a_terminal() -> None:
    screen = Terminal()
    with BackendProgress("cases", stream=screen) as progress:
        progress.start("model", 3)
        progress.start("bochs", 3)
        for _ in range(3):
            progress.advance("model")
        progress.advance("bochs")
    shown = screen.getvalue()
    assert "model" in shown and "3/3" in shown
    assert "bochs" in shown and "1/3" in shown
    assert "cases" in shown


def test_no_progress_when_standard_error_is_not_a_terminal(
        silent_qemu: None, capsys: pytest.CaptureFixture[str]) -> None:
    pipe = io.StringIO()
    with BackendProgress("cases", stream=pipe) as progress:
        progress.start("model", 1)
        progress.advance("model")
    assert pipe.getvalue() == ""
    assert main(["conform", "--backends", "model,qemu", *TWO_CASES]) == 0
    assert capsys.readouterr().err == ""


def test_help_does_not_import_rich() -> None:
    """rich costs start-up time; it is imported only when a terminal shows progress."""
    code = ("import sys\nfrom apiclab.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('rich' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "False"


def test_random_writes_nothing_without_candidates_and_says_how_to_save(
        silent_qemu: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["conform", "--backends", "model,qemu", "--random", "4", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    assert "disagreement on qemu" in out
    last = out.rstrip("\n").splitlines()[-1]
    assert "not saved: add --candidates DIR" in last


def test_random_saves_candidates_in_the_directory_given_and_names_them(
        silent_qemu: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "found"
    assert main(["conform", "--backends", "model,qemu", "--random", "4", "--seed", "1",
                 "--candidates", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["found"]
    saved = sorted(out_dir.iterdir())
    assert saved and all(p.suffix == ".toml" for p in saved)
    for p in saved:
        assert str(p) in out
    assert out.rstrip("\n").splitlines()[-1].endswith(f"saved as a candidate case in {out_dir}")
