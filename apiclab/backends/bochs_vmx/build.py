"""Rebuild `vmx_probe.bin` from `vmx_probe.S` and `vmx_probe.ld` with GNU binutils.

    python -m apiclab.backends.bochs_vmx.build            # rewrite the committed vmx_probe.bin
    python -m apiclab.backends.bochs_vmx.build --check    # exit 1 if it differs from the sources

A flat binary has no timestamps, so a rebuild equals the committed bytes;
`tests/backends/bochs_vmx/test_vmx_probe_build.py` checks exactly that.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apiclab.rom_build import BuildError, Rom, missing_tools

PROBE = Rom("vmx_probe", Path(__file__).resolve().parent)
SOURCE, LINKER_SCRIPT, BINARY = PROBE.source, PROBE.linker_script, PROBE.binary
ROM_BASE = 0xF0000  # where vmx_probe.ld links the ROM (its physical address below 1 MiB)
build, symbols, main = PROBE.build, PROBE.symbols, PROBE.main

__all__ = ["BINARY", "ROM_BASE", "BuildError", "build", "main", "missing_tools", "symbols"]

if __name__ == "__main__":
    sys.exit(main())
