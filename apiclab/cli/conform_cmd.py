"""`apiclab conform`: the APIC conformance suite on the model, real KVM, QEMU and Bochs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from apiclab.cli.numbers import MAX_SEED, int_in
from apiclab.cli.progress import BackendProgress
from apiclab.conform.backends import BACKEND_NAMES, make_backend, parse_backend_list
from apiclab.conform.case import builtin_dir, load_builtin, load_dir
from apiclab.conform.report import (
    differences_text,
    dumps,
    matrix_text,
    summary_text,
    to_html,
    to_json,
)
from apiclab.conform.runner import run_suite
from apiclab.errors import UserError
from apiclab.files import check_output_dir, check_output_file, write_atomic
from apiclab.report import export

MAX_RANDOM = 1_000_000  # programs of --random: a day of runs on the fastest backend


def register(sub: Any) -> None:
    p = sub.add_parser(
        "conform",
        help="run the APIC conformance suite on the model, KVM, QEMU and Bochs",
        description="Run guest programs with SDM-derived expectations on several implementations "
        "of the local APIC and report, case by case, which agree and where they differ.",
    )
    p.add_argument("--backends", metavar="LIST",
                   help=f"comma-separated subset of {','.join(BACKEND_NAMES)} "
                   "(default: all; unavailable ones are reported as not run)")
    p.add_argument("--cases", metavar="DIR", action="append", type=Path,
                   help="a directory of case TOML files (repeatable); default: the built-in suite")
    p.add_argument("--with-builtin", action="store_true",
                   help="with --cases: run the built-in cases too")
    p.add_argument("--only", metavar="NAME", action="append",
                   help="run only the case(s) of this name (repeatable)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--html", metavar="REPORT", type=Path, help="also write the matrix as HTML")
    p.add_argument("--random", metavar="N", type=int_in(1, MAX_RANDOM),
                   help="differential mode: N random programs on every chosen backend "
                   f"(1..{MAX_RANDOM})")
    p.add_argument("--seed", metavar="S", type=int_in(0, MAX_SEED), default=0,
                   help="seed of --random (default 0)")
    p.add_argument("--candidates", metavar="DIR", type=Path,
                   help="with --random: save each shrunk disagreement as a case TOML file in DIR "
                   "(created if missing); without it nothing is written")
    export.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = parse_backend_list(args.backends) if args.backends else list(BACKEND_NAMES)
    # Outputs are checked before the run, so minutes of work are not lost to an unwritable path.
    if args.html:
        check_output_file(args.html, "--html")
    if args.random is not None and args.candidates is not None:
        check_output_dir(args.candidates, "--candidates")
    backends = {name: make_backend(name) for name in names}
    if args.random is not None:
        from apiclab.conform.differential import run_random

        with BackendProgress("programs") as progress:
            return run_random(args.random, args.seed, backends, args.candidates,
                              as_json=args.json, progress=progress)
    if args.cases:
        cases = [c for d in args.cases for c in load_dir(d)]
        if args.with_builtin:
            cases = load_builtin() + cases
    else:
        cases = load_dir(builtin_dir())
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {c.name for c in cases}
        if unknown:
            raise UserError(f"--only: no case named {sorted(unknown)[0]!r}")
        cases = [c for c in cases if c.name in wanted]
    drawn = export.wanted(args)
    with BackendProgress("cases") as progress:
        result = run_suite(cases, backends, progress=progress)
    if drawn:
        from apiclab.conform.timeline import difference_stories

        export.export(args, difference_stories(result), title="apiclab conform: differences",
                      subtitle="each difference's case on every backend that ran it")
    if args.html:
        write_atomic(args.html, to_html(result))
    if args.json:
        print(dumps(to_json(result)))
    else:
        print(matrix_text(result))
        diffs = differences_text(result)
        if diffs:
            print("\ndifferences:\n" + diffs)
        print("\n" + summary_text(result))
        if args.html:
            print(f"\nHTML report: {args.html}", file=sys.stderr)
    return 0
