"""The committed vmx_probe.bin is exactly what vmx_probe.S and vmx_probe.ld build to, and its case
table is the one cases.py describes (they cannot drift)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apiclab.backends.bochs_vmx import build
from apiclab.backends.bochs_vmx.cases import CASES, RECORD_SIZE, rom_table
from apiclab.backends.bochs_vmx.runner import PROBE_ROM

needs_binutils = pytest.mark.skipif(
    bool(build.missing_tools()),
    reason=f"binutils missing ({', '.join(build.missing_tools())}); CI installs package binutils",
)


@needs_binutils
def test_rebuilding_from_source_gives_the_committed_bytes(tmp_path: Path) -> None:
    assert build.build(tmp_path) == build.BINARY.read_bytes()


@needs_binutils
def test_the_roms_case_table_is_cases_py(tmp_path: Path) -> None:
    rom = build.build(tmp_path)
    start = build.symbols(tmp_path)["cases"] - build.ROM_BASE
    assert rom[start:start + len(CASES) * RECORD_SIZE + 1] == rom_table()


def test_committed_rom_is_64k_with_a_far_jump_at_the_reset_vector() -> None:
    rom = PROBE_ROM.read_bytes()
    assert PROBE_ROM == build.BINARY
    assert len(rom) == 0x10000
    # EA iw iw: jmp far F000:start16 (SDM §9.1.4: the first instruction is fetched at F000:FFF0)
    assert rom[0xFFF0] == 0xEA
    assert rom[0xFFF3:0xFFF5] == b"\x00\xf0"


def test_build_check_reports_a_match(capsys: pytest.CaptureFixture[str]) -> None:
    if build.missing_tools():
        pytest.skip("binutils missing")
    assert build.main(["--check"]) == 0
    assert "matches its sources" in capsys.readouterr().out


def test_missing_binutils_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(build.BuildError, match="binutils not found: as, ld, objcopy"):
        build.build()
