"""Rebuild `agent.bin` from `agent.S` and `agent.ld` with GNU binutils.

    python -m apiclab.guest.agent.build            # rewrite the committed agent.bin
    python -m apiclab.guest.agent.build --check    # exit 1 if agent.bin differs from the sources

The output is deterministic (a flat binary has no timestamps), so a rebuild must equal the
committed bytes; `tests/guest/agent/test_agent_build.py` checks exactly that.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apiclab.rom_build import BuildError, Rom, missing_tools

AGENT = Rom("agent", Path(__file__).resolve().parent)
SOURCE, LINKER_SCRIPT, BINARY = AGENT.source, AGENT.linker_script, AGENT.binary
build, symbols, main = AGENT.build, AGENT.symbols, AGENT.main

__all__ = ["BINARY", "BuildError", "build", "main", "missing_tools", "symbols"]

if __name__ == "__main__":
    sys.exit(main())
