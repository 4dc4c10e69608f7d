"""The `apiclab` command line: one sub-command module per user task."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from apiclab import interrupts
from apiclab.errors import ApiclabError, UserError

# Each module has `register(subparsers)`, which adds its parser with `func=run(args) -> int`.
# Only the module of the command being run is imported (with everything it needs); the others
# appear in `apiclab --help` by their one-line summary, so start-up does not pay for the model,
# the backends and the reports of every command. A test keeps each summary equal to the help its
# module registers.
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("apiclab.cli.reproduce_cmd",
                  "reproduce the Windows 7 0x5C reboot BSOD on the model"),
    "profiles": ("apiclab.cli.profiles_cmd",
                 "list the KVM profiles, their kernel releases and the commits behind each switch"),
    "kvm": ("apiclab.cli.kvm_cmd",
            "the host's real KVM: info, reproduce the 0x5C mechanism on it"),
    "conform": ("apiclab.cli.conform_cmd",
                "run the APIC conformance suite on the model, KVM, QEMU and Bochs"),
    "explore": ("apiclab.cli.explore_cmd",
                "search the model for a run that breaks a property; shrink and explain it"),
    "vmx": ("apiclab.cli.vmx_cmd",
            "VMX virtual-interrupt delivery (stale RVI) on Bochs and on the model"),
    "diagnose": ("apiclab.cli.diagnose_cmd",
                 "read a hung VM's LAPIC evidence and say why each pending interrupt is held off"),
    "campaign": ("apiclab.cli.campaign_cmd",
                 "run conform, conform --random, explore or kvm storm over a Ray cluster"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (what was wrong, with `--help` to learn more)
    and exit status 2, like every other user error (docs/design.md, invariant 5)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """--version, looked up only when asked (importlib.metadata costs every start ~0.05 s)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 **_: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from apiclab import native

        print(f"apiclab {version()} (model: {native.status})")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only`, that command's full parser and the others as summaries."""
    parser = OneLineParser(
        prog="apiclab",
        description="An executable laboratory for x86 interrupt virtualization.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def version() -> str:
    """The installed distribution's version (pyproject.toml), so that there is one source."""
    import importlib.metadata

    try:
        return importlib.metadata.version("apiclab")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    # first of all, so that a signal during the imports below ends in one line too
    restore = interrupts.install()
    try:
        return _main(argv)
    except (KeyboardInterrupt, interrupts.Terminated) as e:
        # every run's clean-up (children, tracefs instances, temporary files) ran on the way here
        what = "terminated" if isinstance(e, interrupts.Terminated) else "interrupted"
        print(f"apiclab: {what}", file=sys.stderr)
        return interrupts.exit_status(e)
    finally:
        if argv is None:  # the process is apiclab and ends now: a late signal changes nothing
            interrupts.ignore_from_now()
        else:  # called from Python (tests): put the caller's handlers back
            restore()


def _main(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(words)
    parser = build_parser(only=command or "")
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"apiclab: {e}", file=sys.stderr)
        return 2
    except ApiclabError as e:  # e.g. a backend's output that does not decode: not the user's fault
        print(f"apiclab: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
