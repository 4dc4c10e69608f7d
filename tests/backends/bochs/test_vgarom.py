"""The VGA ROM Bochs needs: found among Debian's places, or one line saying there is none, and
then the Bochs backends are unavailable with that line instead of failing at Bochs' start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apiclab.backends.base import BackendUnavailable
from apiclab.backends.bochs import BochsBackend, vgarom
from apiclab.backends.bochs.vgarom import ENV, find_vga_rom
from apiclab.cli.main import main


@pytest.fixture(autouse=True)
def _no_explicit_rom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def _rom(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x55\xaa" + bytes(510))
    return path


def test_an_empty_share_is_one_line_naming_where_it_looked_and_the_package(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable) as e:
        find_vga_rom(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("no VGA ROM for Bochs in ")
    for d in ("bochs", "seabios", "vgabios"):
        assert str(tmp_path / d) in msg
    assert "vgabios" in msg and ENV in msg


def test_a_dangling_bochs_default_link_is_passed_over_for_seabios(tmp_path: Path) -> None:
    """The fresh-Debian case: VGABIOS-lgpl-latest points into an uninstalled vgabios."""
    (tmp_path / "bochs").mkdir()
    (tmp_path / "bochs" / "VGABIOS-lgpl-latest").symlink_to("../vgabios/vgabios.bin")
    seabios = _rom(tmp_path / "seabios" / "vgabios-stdvga.bin")
    _rom(tmp_path / "seabios" / "vgabios-cirrus.bin")
    assert find_vga_rom(tmp_path) == seabios


def test_only_dangling_links_is_still_none(tmp_path: Path) -> None:
    (tmp_path / "bochs").mkdir()
    (tmp_path / "bochs" / "VGABIOS-lgpl-latest").symlink_to("../vgabios/vgabios.bin")
    with pytest.raises(BackendUnavailable, match="no VGA ROM for Bochs"):
        find_vga_rom(tmp_path)


def test_bochs_default_name_comes_first_and_debug_builds_never(tmp_path: Path) -> None:
    _rom(tmp_path / "vgabios" / "vgabios.bin")
    _rom(tmp_path / "vgabios" / "vgabios.debug.bin")
    (tmp_path / "bochs").mkdir()
    (tmp_path / "bochs" / "VGABIOS-lgpl-latest").symlink_to("../vgabios/vgabios.bin")
    assert find_vga_rom(tmp_path) == tmp_path / "bochs" / "VGABIOS-lgpl-latest"
    (tmp_path / "bochs" / "VGABIOS-lgpl-latest").unlink()
    (tmp_path / "vgabios" / "vgabios.bin").unlink()
    with pytest.raises(BackendUnavailable):
        find_vga_rom(tmp_path)


def test_the_environment_names_the_rom_and_nothing_else_is_searched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _rom(tmp_path / "my-vga.bin")
    _rom(tmp_path / "seabios" / "vgabios-stdvga.bin")
    monkeypatch.setenv(ENV, str(mine))
    assert find_vga_rom(tmp_path) == mine
    monkeypatch.setenv(ENV, str(tmp_path / "absent.bin"))
    with pytest.raises(BackendUnavailable, match=f"^{ENV}=.*absent.bin is not a readable file"):
        find_vga_rom(tmp_path)


@pytest.mark.skipif(shutil.which("bochs") is None, reason="bochs not installed")
def test_this_machine_has_a_rom_that_is_a_file_not_a_dangling_link() -> None:
    try:
        rom = find_vga_rom()
    except BackendUnavailable as e:  # a machine without any: the Bochs tests skip with this line
        pytest.skip(str(e))
    assert rom.resolve().is_file()
    assert rom.stat().st_size >= 512
    assert rom.read_bytes()[:2] == b"\x55\xaa"  # an option ROM's signature


def test_without_a_rom_the_backend_is_unavailable_with_that_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vgarom, "SHARE", tmp_path)
    monkeypatch.setattr("apiclab.backends.bochs.backend._version", lambda: "Bochs 2.7")
    avail = BochsBackend().availability()
    assert not avail.available
    assert avail.detail.startswith(f"no VGA ROM for Bochs in {tmp_path}")


def test_without_a_rom_vmx_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(vgarom, "SHARE", tmp_path)
    monkeypatch.setattr("apiclab.backends.bochs.backend._version", lambda: "Bochs 2.7")
    assert main(["vmx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"apiclab: no VGA ROM for Bochs in {tmp_path}")
    assert err.count("\n") == 1
