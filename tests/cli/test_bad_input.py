"""Bad input on the command line: one line on stderr, exit 2, no traceback, nothing written, and
no run started (issue 9, "Bad input"). Each test is one class of mistake; the fuzz suite
(tests/fuzz) covers the parsers behind them with generated input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apiclab.cli.main import main

CASE_HEAD = '''name = "x"
sdm = "10.5.3"
description = "d"
[program]
mode = "xapic-pm32"
default_handler = { eoi = true, log = true }
'''


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main() in this process: (exit status, stdout, stderr); argparse's exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_exit_2(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def run_apiclab(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A separate process, for inputs that used to block or eat memory: a hang fails the test
    (TimeoutExpired) instead of hanging the suite."""
    return subprocess.run([sys.executable, "-m", "apiclab", *argv], capture_output=True,
                          text=True, timeout=timeout)


def case_dir(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    directory = tmp_path / "cases"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


# --- input files --------------------------------------------------------------------------------


def test_a_case_file_that_is_not_utf8_is_named_with_its_line(capsys, tmp_path) -> None:
    directory = tmp_path / "enc"
    directory.mkdir()
    (directory / "x.toml").write_bytes(b'name = "ok"\nsdm = "x\xff"\n')
    code, out, err = run_cli(capsys, "conform", "--backends", "model", "--cases", str(directory))
    assert_one_line_exit_2(code, err, "x.toml:2", "not UTF-8", "0xff")
    assert out == ""


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "oversized"])
def test_case_files_are_only_read_as_bounded_regular_files(tmp_path, kind) -> None:
    directory = tmp_path / "cases"
    directory.mkdir()
    path = directory / "x.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text("# " + "x" * (1 << 20) + "\n")
    done = run_apiclab("conform", "--backends", "model", "--cases", str(directory))
    expected = {"fifo": "is a FIFO", "dev-zero": "is a character device",
                "directory": "is a directory", "oversized": "larger than 1048576 bytes"}[kind]
    assert_one_line_exit_2(done.returncode, done.stderr, expected)
    assert done.stdout == ""


def test_a_scenario_path_that_does_not_exist_says_no_such_file(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "reproduce", "--scenario", str(tmp_path / "none.toml"))
    assert_one_line_exit_2(code, err, "no such file")
    assert "built-in" not in err


def test_a_scenario_fifo_is_refused_without_blocking(tmp_path) -> None:
    os.mkfifo(tmp_path / "s.toml")
    done = run_apiclab("reproduce", "--scenario", str(tmp_path / "s.toml"))
    assert_one_line_exit_2(done.returncode, done.stderr, "is a FIFO")


# --- output paths: checked before the run, nothing half-written -----------------------------------


def test_html_naming_a_directory_is_refused_before_the_run(capsys, tmp_path) -> None:
    code, out, err = run_cli(capsys, "conform", "--backends", "model", "--html", str(tmp_path))
    assert_one_line_exit_2(code, err, "--html", "is a directory")
    assert out == ""  # no matrix: the suite did not run
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_html_in_a_missing_directory_creates_nothing(capsys, tmp_path) -> None:
    target = tmp_path / "missing" / "report.html"
    code, out, err = run_cli(capsys, "conform", "--backends", "model", "--html", str(target))
    assert_one_line_exit_2(code, err, "--html", "does not exist")
    assert out == "" and not target.parent.exists()


def test_candidates_naming_an_existing_file_is_refused_before_the_run(capsys, tmp_path) -> None:
    existing = tmp_path / "taken"
    existing.write_text("mine\n")
    code, out, err = run_cli(capsys, "conform", "--backends", "model", "--random", "1",
                             "--candidates", str(existing))
    assert_one_line_exit_2(code, err, "--candidates", "not a directory")
    assert out == "" and existing.read_text() == "mine\n"


# --- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["vmx", "--timeout", "nan"], "--timeout"),
        (["vmx", "--timeout", "inf"], "--timeout"),
        (["vmx", "--timeout", "1e308"], "--timeout"),
        (["conform", "--random", "0"], "--random"),
        (["conform", "--random", "1e9"], "--random"),
        (["conform", "--seed", "-1"], "--seed"),
        (["reproduce", "--seed", str(2**70)], "--seed"),
        (["reproduce", "--reboots", "nan"], "--reboots"),
        (["kvm", "reproduce", "--wait-ms", "inf"], "--wait-ms"),
        (["explore", "--catalogue", "--budget", "inf"], "--budget"),
        (["explore", "--catalogue", "--budget", "nan"], "--budget"),
        (["explore", "--catalogue", "--bound", "1e308"], "--bound"),
        (["explore", "--catalogue", "--random-runs", "99999999999999"], "--random-runs"),
    ],
)
def test_every_number_is_finite_and_in_range(capsys, argv, flag) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_exit_2(code, err, flag)
    assert out == ""


# --- case and program fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (CASE_HEAD + 'steps = [ { op = "wait", vector = 0x30, ticks = 10 }, '
         '{ op = "bugcheck_if_timeout", code = 0x100000000 } ]\n',
         ["steps[1].code", "0x100000000", "0..0xffffffff"]),
        (CASE_HEAD + 'steps = [ { op = "pause", tick = 10 } ]\n',
         ["steps[0].tick", "unknown field of a pause step"]),
        ('name = "x"\nsmd = "10.8"\ndescription = "d"\n[program]\nsteps = []\n',
         ["x.toml:smd: unknown field"]),
        (CASE_HEAD + 'steps = [ { op = "sti" } ]\n[[expect]]\nkind = "interrupt"\n'
         'vector = "0x80"\n', ["expect[0].vector", "expected an integer", "'0x80'"]),
        (CASE_HEAD + 'handlers = { "0x40" = { eoi = "yes" } }\nsteps = []\n',
         ["handlers.0x40.eoi", "true or false"]),
        (CASE_HEAD + 'steps = [ { op = "wait", vector = 0x130, ticks = 1 } ]\n',
         ["steps[0].vector", "0..0xff"]),
    ],
)
def test_a_wrong_field_is_named_at_load_time(capsys, tmp_path, text, words) -> None:
    directory = case_dir(tmp_path, text)
    code, out, err = run_cli(capsys, "conform", "--backends", "model", "--cases", str(directory))
    assert_one_line_exit_2(code, err, *words)
    assert out == "" and "sdm: missing" not in err


def test_a_scenario_clock_of_1_ns_is_refused_not_run_for_minutes(capsys, tmp_path) -> None:
    builtin = Path(__file__).parents[2] / "apiclab" / "scenarios" / "win7-reboot-0x5c.toml"
    text = re.sub(r"(?m)^clock_period_ns = .*$", "clock_period_ns = 1", builtin.read_text())
    assert "\nclock_period_ns = 1\n" in text
    (tmp_path / "fast.toml").write_text(text)
    code, out, err = run_cli(capsys, "reproduce", "--scenario", str(tmp_path / "fast.toml"),
                             "--reboots", "1")
    assert_one_line_exit_2(code, err, "windows7.clock_period_ns", "100000")
    assert out == ""


# --- user properties -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("import sys\ndef check(events):\n    sys.exit(3)\n", ["sys.exit(3)"]),
        ("from apiclab.explore.properties import Violation\n"
         "def check(events):\n    return Violation('a', None, 3)\n", ["malformed Violation"]),
        ("from apiclab.explore.properties import Violation\n"
         "def check(events):\n    return Violation(10**9, 0, 'x')\n", ["malformed Violation"]),
        ("def check(events):\n    return 3\n", ["returned int"]),
        ("import sys\nsys.exit(0)\n", ["cannot import", "sys.exit(0)"]),
    ],
)
def test_a_user_property_that_misbehaves_is_one_line_and_exit_2(capsys, tmp_path, source,
                                                                words) -> None:
    path = tmp_path / "prop.py"
    path.write_text(source)
    code, out, err = run_cli(capsys, "explore", "--property", str(path), "--profile", "kvm-3.17",
                             "--bound", "0", "--random-runs", "0")
    assert_one_line_exit_2(code, err, *words)
    assert "VIOLATION" not in out


def test_explore_help_says_a_property_file_or_module_runs_as_code(capsys) -> None:
    code, out, _ = run_cli(capsys, "explore", "--help")
    assert code == 0 and "run as Python" in " ".join(out.split())
