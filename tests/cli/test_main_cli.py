"""The top of the command line: --version, and a description in every command's --help."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator

import pytest

from apiclab import native
from apiclab.cli.main import build_parser, main


def test_version_comes_from_the_installed_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out == f"apiclab {importlib.metadata.version('apiclab')} (model: {native.status})\n"
    assert native.status in ("native", "python (APICLAB_NATIVE=0)")  # the suite's settings


def test_version_from_the_installed_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "apiclab", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    name, number, model = proc.stdout.split(maxsplit=2)
    assert name == "apiclab"
    assert number.split(".")[0].isdigit()
    assert model == f"(model: {native.status})\n"  # the same environment and build as here


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_walk_sees_the_nested_kvm_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"profiles", "kvm", "kvm info", "kvm reproduce", "conform", "vmx"} <= names


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_a_description_in_its_help(path: tuple[str, ...],
                                                     parser: argparse.ArgumentParser) -> None:
    assert parser.description and len(parser.description) > 40, path
    helptext = parser.format_help()
    # the description's first words appear under the usage line
    assert " ".join(parser.description.split()[:3]) in " ".join(helptext.split())


def test_each_commands_summary_in_main_is_the_help_its_module_registers() -> None:
    from apiclab.cli.main import COMMANDS as TABLE

    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert helps == {name: summary for name, (_, summary) in TABLE.items()}


def test_help_of_the_whole_command_line_imports_no_command_module() -> None:
    code = ("import sys; from apiclab.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.endswith('_cmd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
