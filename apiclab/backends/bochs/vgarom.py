"""Which VGA BIOS image Bochs loads at 0xC0000.

Bochs refuses to start without a VGA ROM ("ROM: couldn't open ROM image file"), and its built-in
default, `/usr/share/bochs/VGABIOS-lgpl-latest`, is on Debian 12 a link into package `vgabios`,
which `bochs` does not pull in when `seabios` already satisfies its dependency: on a fresh machine
the link dangles. The agent ROM is the whole firmware and never calls the VGA BIOS, so any VGA
image Debian ships serves; this module finds the first existing regular file (links followed)
among the places Debian puts them, or says in one line that there is none.

`APICLAB_BOCHS_VGA_ROM=FILE` names the image explicitly (then nothing else is searched).
"""

from __future__ import annotations

import os
from pathlib import Path

from apiclab.backends.base import BackendUnavailable

ENV = "APICLAB_BOCHS_VGA_ROM"
SHARE = Path("/usr/share")
# Patterns under SHARE, best first. Within a pattern, names sort and the LGPL VGA BIOS' debug
# builds are left out (they chatter on the debug ports).
CANDIDATES = (
    "bochs/VGABIOS-lgpl-latest",  # Bochs' own default name (package bochs, a link into vgabios)
    "bochs/VGABIOS-lgpl-latest*",
    "vgabios/vgabios.bin",  # package vgabios (the LGPL VGA BIOS)
    "vgabios/vgabios*.bin",
    "seabios/vgabios-stdvga.bin",  # package seabios: SeaVGABIOS for the Bochs/QEMU standard VGA
    "seabios/vgabios-*.bin",
)
PACKAGES = "Debian package vgabios, or seabios"


def find_vga_rom(share: Path | None = None) -> Path:
    """The VGA ROM image Bochs should load: `$APICLAB_BOCHS_VGA_ROM` when set, else the first
    existing file among CANDIDATES under `share` (default SHARE). BackendUnavailable, one line,
    when there is none."""
    share = SHARE if share is None else share
    explicit = os.environ.get(ENV)
    if explicit:
        if _usable(Path(explicit)):
            return Path(explicit)
        raise BackendUnavailable(f"{ENV}={explicit} is not a readable file (the VGA ROM for Bochs)")
    for pattern in CANDIDATES:
        for path in sorted(share.glob(pattern)):
            if _usable(path) and ".debug." not in path.name:
                return path
    dirs = ", ".join(sorted({str(share / p.split("/")[0]) for p in CANDIDATES}))
    raise BackendUnavailable(f"no VGA ROM for Bochs in {dirs} (install {PACKAGES}, "
                             f"or set {ENV}=FILE)")


def _usable(path: Path) -> bool:
    # is_file() follows links, so a dangling VGABIOS-lgpl-latest is skipped
    return path.is_file() and os.access(path, os.R_OK)
