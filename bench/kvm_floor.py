"""The C floor of the real-KVM benches: bench/kvm_floor.c built with the machine's gcc into a
temporary directory (removed afterwards), fed the same agent ROM and LAPIC image as apiclab.

    with CFloor() as floor:
        floor.run("inplace", rom, image, 300)   # {"runs", "seconds", "tick", ...}
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

SOURCE = Path(__file__).resolve().parent / "kvm_floor.c"


class FloorUnavailable(RuntimeError):
    pass


def floor_or_none(prefix: str = "") -> CFloor | None:
    """The C floor, or None with the reason printed: a bench without gcc still measures apiclab."""
    try:
        return CFloor()
    except FloorUnavailable as e:
        print(f"{prefix}{e}")
        return None


class CFloor:
    def __init__(self) -> None:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            raise FloorUnavailable("no gcc/cc on this machine: no C floor")
        self._dir = tempfile.TemporaryDirectory(prefix="apiclab-kvm-floor-")
        self.dir = Path(self._dir.name)
        self.binary = self.dir / "kvm_floor"
        proc = subprocess.run([gcc, "-O2", "-o", str(self.binary), str(SOURCE)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            self._dir.cleanup()
            raise FloorUnavailable(f"gcc failed: {proc.stderr.strip()}")

    def run(self, mode: str, rom: bytes, image: bytes, runs: int,
            log: str = "coalesced") -> dict[str, Any]:
        """`log`: "coalesced" (the log port's writes queued in KVM's ring, where the host has
        KVM_CAP_COALESCED_PIO, as apiclab's storm) or "exits" (every log byte an exit)."""
        rom_path, image_path = self.dir / "rom.bin", self.dir / "lapic.bin"
        rom_path.write_bytes(rom)
        image_path.write_bytes(image)
        proc = subprocess.run([str(self.binary), mode, str(rom_path), str(image_path),
                               str(runs), log], capture_output=True, text=True, timeout=600,
                              check=False)
        if proc.returncode != 0:
            raise FloorUnavailable(f"kvm_floor {mode} failed: {proc.stderr.strip()}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> CFloor:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
