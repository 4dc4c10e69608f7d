"""The committed agent.bin is exactly what agent.S and agent.ld build to (they cannot drift)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apiclab.guest.agent import build
from apiclab.guest.agent.image import (
    PROGRAM_OFFSET,
    PROGRAM_SLOT_SIZE,
    RELAY_FLAG_OFFSET,
    RESET_VECTOR_OFFSET,
    ROM_SIZE,
    agent_binary,
)

needs_binutils = pytest.mark.skipif(
    bool(build.missing_tools()),
    reason=f"binutils missing ({', '.join(build.missing_tools())}); CI installs package binutils",
)


@needs_binutils
def test_rebuilding_from_source_gives_the_committed_bytes(tmp_path: Path) -> None:
    assert build.build(tmp_path) == build.BINARY.read_bytes()


@needs_binutils
def test_program_slot_and_reset_vector_are_where_image_py_puts_them(tmp_path: Path) -> None:
    build.build(tmp_path)
    symbols = build.symbols(tmp_path)
    assert symbols["program_slot"] == PROGRAM_OFFSET
    assert symbols["reset_vector"] == RESET_VECTOR_OFFSET
    assert symbols["relay_flag"] == RELAY_FLAG_OFFSET
    assert symbols["start"] == 0


def test_committed_binary_is_a_64k_rom_with_a_far_jump_at_the_reset_vector() -> None:
    rom = agent_binary()
    assert len(rom) == ROM_SIZE
    # EA iw iw: jmp far F000:start (SDM §9.1.4: the first instruction is fetched at F000:FFF0)
    assert rom[RESET_VECTOR_OFFSET] == 0xEA
    assert rom[RESET_VECTOR_OFFSET + 3:RESET_VECTOR_OFFSET + 5] == b"\x00\xf0"
    assert not any(rom[PROGRAM_OFFSET:PROGRAM_OFFSET + PROGRAM_SLOT_SIZE])


def test_missing_binutils_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(build.BuildError, match="binutils not found: as, ld, objcopy"):
        build.build()
