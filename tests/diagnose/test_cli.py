"""`apiclab diagnose` as a user meets it: exit 0/1/2, the JSON keys, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import FIXTURES
from test_parsers import WINDBG


def test_the_stuck_qemu_text_exits_1_and_names_e1(diagnose: Any) -> None:
    run = diagnose(str(FIXTURES / "qemu-tcg-stuck.txt"), "--json")
    assert run.code == 1
    doc = run.json()
    [cpu] = doc["cpus"]
    assert (cpu["isr"], cpu["irr"], cpu["ppr"], cpu["tpr"]) == ([0xE1], [0xD1], 0xE0, 0)
    [p] = cpu["pending"]
    assert (p["vector"], p["deliverable"], p["blocking_vector"]) == (0xD1, False, 0xE1)
    assert [s["commit"] for s in doc["signatures"]] == ["4114c27d450b"]


def test_the_text_report_explains_the_hold_with_the_sdm_section(diagnose: Any) -> None:
    run = diagnose(str(FIXTURES / "qemu-tcg-stuck.txt"))
    assert run.code == 1
    assert "pending 0xd1: HELD OFF" in run.out and "0xe1 is in service" in run.out
    assert "§10.8.3.1" in run.out and "4114c27d450b" in run.out


def test_two_cpus_at_reset_exit_0(diagnose: Any) -> None:
    run = diagnose(str(FIXTURES / "qemu-tcg-reset-2cpu.txt"), "--json")
    assert run.code == 0 and len(run.json()["cpus"]) == 2


def test_windbg_text_names_the_handlers(diagnose: Any, tmp_path: Path) -> None:
    (tmp_path / "kd.txt").write_text(WINDBG)
    run = diagnose(str(tmp_path / "kd.txt"), "--json")
    assert run.code == 1
    cpu = run.json()["cpus"][0]
    assert cpu["in_service"][0]["handler"] == "nt!KiUnexpectedInterrupt177"
    assert cpu["in_service"][0]["eoi_expected"] == "no"
    assert {"vector": 0xD1, "source": "hpet"}.items() <= cpu["waiting_for"][0].items()


def test_images_one_per_cpu(diagnose: Any) -> None:
    img = str(FIXTURES / "kvm-stale-isr.lapic")
    run = diagnose(img, str(FIXTURES / "kvm-stuck.lapic"), "--json")
    assert run.code == 1
    assert [c["cpu"] for c in run.json()["cpus"]] == [0, 1]


def test_bad_input_is_one_line_and_exit_2(diagnose: Any, tmp_path: Path) -> None:
    (tmp_path / "short.lapic").write_bytes(bytes(1000))
    (tmp_path / "junk.txt").write_text("nothing here\n")
    for args in ([str(tmp_path / "short.lapic")], [str(tmp_path / "junk.txt")],
                 [str(tmp_path / "missing")], [], ["--pause", str(tmp_path / "junk.txt")],
                 ["--format", "trace", str(tmp_path / "junk.txt")]):
        run = diagnose(*args)
        assert run.code == 2, args
        assert run.err.count("\n") == 1 and "Traceback" not in run.err, (args, run.err)
        assert run.out == ""


def test_mixed_kinds_of_files_are_refused(diagnose: Any) -> None:
    run = diagnose(str(FIXTURES / "kvm-stuck.lapic"), str(FIXTURES / "qemu-tcg-stuck.txt"))
    assert run.code == 2 and "different kinds" in run.err
