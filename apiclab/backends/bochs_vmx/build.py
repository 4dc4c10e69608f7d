"""Rebuild `vmx_probe.bin` from `vmx_probe.S` and `vmx_probe.ld` with GNU binutils.

    python -m apiclab.backends.bochs_vmx.build            # rewrite the committed vmx_probe.bin
    python -m apiclab.backends.bochs_vmx.build --check    # exit 1 if it differs from the sources

A flat binary has no timestamps, so a rebuild equals the committed bytes;
`tests/backends/bochs_vmx/test_probe_build.py` checks exactly that.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from apiclab.guest.agent.build import BuildError, missing_tools

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "vmx_probe.S"
LINKER_SCRIPT = HERE / "vmx_probe.ld"
BINARY = HERE / "vmx_probe.bin"
ROM_BASE = 0xF0000  # where vmx_probe.ld links the ROM (its physical address below 1 MiB)

__all__ = ["BINARY", "ROM_BASE", "BuildError", "build", "main", "missing_tools", "symbols"]


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{argv[0]} failed: {proc.stderr.strip()}")


def build(workdir: Path | None = None) -> bytes:
    """Assemble and link the probe; return the 64 KiB ROM image."""
    if missing := missing_tools():
        raise BuildError(f"binutils not found: {', '.join(missing)} (install package binutils)")
    with tempfile.TemporaryDirectory(prefix="apiclab-vmx-build-") as tmp:
        work = workdir or Path(tmp)
        obj, elf, out = work / "vmx_probe.o", work / "vmx_probe.elf", work / "vmx_probe.bin"
        _run(["as", "--32", "-o", str(obj), str(SOURCE)])
        _run(["ld", "-m", "elf_i386", "--no-warn-rwx-segments", "-T", str(LINKER_SCRIPT),
              "-o", str(elf), str(obj)])
        _run(["objcopy", "-O", "binary", "-j", ".rom", str(elf), str(out)])
        return out.read_bytes()


def symbols(workdir: Path) -> dict[str, int]:
    """Symbols of the linked probe (after `build(workdir)`), as linear addresses."""
    proc = subprocess.run(["nm", str(workdir / "vmx_probe.elf")], capture_output=True,
                          text=True, check=True)
    table: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = int(parts[0], 16)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    try:
        rom = build()
    except BuildError as e:
        print(f"build: {e}", file=sys.stderr)
        return 2
    if args.check:
        same = BINARY.exists() and BINARY.read_bytes() == rom
        print("vmx_probe.bin matches its sources" if same
              else "vmx_probe.bin differs from its sources")
        return 0 if same else 1
    BINARY.write_bytes(rom)
    print(f"wrote {BINARY} ({len(rom)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
