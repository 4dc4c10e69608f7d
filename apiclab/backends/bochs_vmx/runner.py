"""Booting the VMX probe ROM in Bochs and decoding what it printed.

The Bochs configuration is the Bochs backend's (`config`: a headless Skylake-X with VMX and
x2APIC, port_e9_hack on), as are its version probe and its retry when every VNC port is taken.
Bochs runs through `apiclab.backends.emulator.run_child`, answered "c" at its debugger prompt and
killed and reaped when the time-out expires; the ROM and the configuration live in a temporary
directory that is removed however the run ends.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from apiclab.backends import emulator
from apiclab.backends.base import BackendUnavailable
from apiclab.backends.bochs.backend import (
    BOCHS,
    RFB_BUSY,
    RFB_RETRIES,
    config,
    ready,
)
from apiclab.backends.bochs.vgarom import find_vga_rom
from apiclab.backends.bochs_vmx.result import ProbeError, ProbeRun, parse

DEFAULT_TIMEOUT_S = 20.0
# the committed ROM (build.py rebuilds it; not imported from there, so that
# `python -m apiclab.backends.bochs_vmx.build` does not import itself through this package)
PROBE_ROM = Path(__file__).resolve().parent / "vmx_probe.bin"


@dataclass
class BochsProbe:
    """One boot of the probe on Bochs: the decoded run and the evidence behind it."""

    version: str
    run: ProbeRun
    argv: str
    exit_status: int
    bochs_messages: str  # Bochs' own error/panic lines (e.g. a failed VM-entry check)


def run_probe(timeout_s: float = DEFAULT_TIMEOUT_S, rom: bytes | None = None) -> BochsProbe:
    """Boot the committed probe ROM (or `rom`) once and decode its lines.

    Raises BackendUnavailable without bochs or a VGA ROM for it, ProbeError when Bochs times out or the probe does
    not reach its end (its "@FAIL" lines and Bochs' messages are in the message).
    """
    version = ready()
    vga_rom = find_vga_rom()
    path = shutil.which(BOCHS)
    if path is None:
        raise BackendUnavailable(f"{BOCHS} is not installed (Debian packages bochs bochsbios)")
    image = rom if rom is not None else PROBE_ROM.read_bytes()
    with emulator.temp_dir("apiclab-bochs-vmx-") as tmp:
        rom_path, cfg = tmp / "vmx_probe.rom", tmp / "bochsrc"
        rom_path.write_bytes(image)
        cfg.write_text(config(rom_path, vga_rom))
        argv = [path, "-q", "-f", str(cfg)]
        for attempt in range(RFB_RETRIES):
            child = emulator.run_child(argv, timeout_s, stdin=b"c\n", cwd=tmp)
            if RFB_BUSY not in child.stderr + child.stdout.decode("ascii", errors="replace"):
                break
            time.sleep(0.2 * (attempt + 1))
    text = child.stdout.decode("ascii", errors="replace")
    messages = _messages(text + "\n" + child.stderr)
    if child.timed_out:
        raise ProbeError(f"Bochs did not finish the VMX probe within {timeout_s:g} s"
                         + _tail(text, messages))
    run = parse(text)
    if run.failures or not run.ended:
        what = "; ".join(run.failures) or "the probe did not print @END"
        raise ProbeError(f"VMX probe failed on Bochs (exit status {child.status}): {what}"
                         + _tail(text, messages))
    return BochsProbe(version=version, run=run, argv=" ".join(argv), exit_status=child.status,
                      bochs_messages=messages)


def _messages(text: str) -> str:
    """Bochs' own error and panic lines (a failed VM-entry check is an error line of CPU0),
    without its start-up banner and without the panic that the "Shutdown" port always causes."""
    keep = [line for line in text.splitlines()
            if re.match(r"^\d{11}[ep]\[", line) and "Shutdown port" not in line]
    return "\n".join(keep[-20:])


def _tail(text: str, messages: str) -> str:
    lines = messages.splitlines() or text.strip().splitlines()
    return (" | Bochs: " + " | ".join(lines[-3:])[:400]) if lines else ""
