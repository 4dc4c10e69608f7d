"""Rebuild `agent.bin` from `agent.S` and `agent.ld` with GNU binutils.

    python -m apiclab.guest.agent.build            # rewrite the committed agent.bin
    python -m apiclab.guest.agent.build --check    # exit 1 if agent.bin differs from the sources

The output is deterministic (a flat binary has no timestamps), so a rebuild must equal the
committed bytes; `tests/guest/agent/test_agent_build.py` checks exactly that.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "agent.S"
LINKER_SCRIPT = HERE / "agent.ld"
BINARY = HERE / "agent.bin"
TOOLS = ("as", "ld", "objcopy")


class BuildError(RuntimeError):
    """binutils missing or failing; the message says which tool and why."""


def missing_tools() -> list[str]:
    """The binutils programs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{argv[0]} failed: {proc.stderr.strip()}")


def build(workdir: Path | None = None) -> bytes:
    """Assemble and link the agent; return the 64 KiB ROM image."""
    if missing := missing_tools():
        raise BuildError(f"binutils not found: {', '.join(missing)} (install package binutils)")
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        obj, elf, out = work / "agent.o", work / "agent.elf", work / "agent.bin"
        _run(["as", "--32", "-o", str(obj), str(SOURCE)])
        _run(["ld", "-m", "elf_i386", "--no-warn-rwx-segments", "-T", str(LINKER_SCRIPT),
              "-o", str(elf), str(obj)])
        _run(["objcopy", "-O", "binary", "-j", ".rom", str(elf), str(out)])
        return out.read_bytes()


def symbols(workdir: Path) -> dict[str, int]:
    """Global symbols of the linked agent (after `build(workdir)`), e.g. program_slot."""
    proc = subprocess.run(["nm", str(workdir / "agent.elf")], capture_output=True, text=True,
                          check=True)
    table: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = int(parts[0], 16)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    try:
        rom = build()
    except BuildError as e:
        print(f"build: {e}", file=sys.stderr)
        return 2
    if args.check:
        same = BINARY.exists() and BINARY.read_bytes() == rom
        print("agent.bin matches its sources" if same else "agent.bin differs from its sources")
        return 0 if same else 1
    BINARY.write_bytes(rom)
    print(f"wrote {BINARY} ({len(rom)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
