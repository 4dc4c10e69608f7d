"""The `apiclab` command line: one sub-command module per user task."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import NoReturn

from apiclab import interrupts
from apiclab.errors import ApiclabError, UserError

# Each module has `register(subparsers)`, which adds its parser with `func=run(args) -> int`.
COMMANDS = [
    "apiclab.cli.reproduce_cmd",
    "apiclab.cli.profiles_cmd",
    "apiclab.cli.kvm_cmd",
    "apiclab.cli.conform_cmd",
    "apiclab.cli.explore_cmd",
    "apiclab.cli.vmx_cmd",
    "apiclab.cli.diagnose_cmd",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (what was wrong, with `--help` to learn more)
    and exit status 2, like every other user error (docs/design.md, invariant 5)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="apiclab",
        description="An executable laboratory for x86 interrupt virtualization.",
    )
    parser.add_argument("--version", action="version", version=f"apiclab {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml), so that there is one source."""
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
    parser = build_parser()
    args = parser.parse_args(argv)
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
