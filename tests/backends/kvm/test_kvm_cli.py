"""`apiclab kvm info` and `apiclab kvm reproduce` end to end on the host's KVM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apiclab.cli.main import main

pytestmark = pytest.mark.usefixtures("kvm")


def test_info_json_names_the_module_and_capabilities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kvm", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["api_version"] == 12
    assert info["modules"] and all(m.startswith("kvm_") for m in info["modules"])
    assert info["capabilities"]["irqchip"] >= 1
    assert set(info["apicv"]) == {"available", "source"}
    assert info["tsc_khz"] > 0


def test_info_without_a_kvm_device_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kvm", "info", "--device", str(tmp_path / "nokvm")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and err.startswith("apiclab: ")


def test_reproduce_json_shows_tick_then_0x5c_and_every_difference_has_evidence(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kvm", "reproduce", "--json", "--wait-ms", "50"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cases = {c["case"]: c for c in doc["cases"]}
    assert list(cases) == ["clean-reset", "stale-isr", "pending-irr"]
    assert cases["clean-reset"]["outcome"] == "tick"
    stale = cases["stale-isr"]
    assert stale["outcome"] == "bugcheck"
    assert stale["bugcheck"] == {"code": 0x5C, "params": [0x10B, 3, 0, 0]}
    assert stale["lapic"]["isr"] == [0xE1] and stale["lapic"]["ppr"] == 0xE0
    assert 0xD1 in stale["lapic"]["irr"]  # the clock is pending, blocked by 0xE1's class
    for case in doc["cases"]:
        assert case["model_outcome"] in ("tick", "bugcheck")
        if case["model_outcome"] != case["outcome"]:
            assert case["deviation"]["first_difference"]
    assert cases["pending-irr"]["model_outcome"] == "bugcheck"


@pytest.mark.parametrize("value", ["0", "60001", "1e3", "nan"])
def test_reproduce_rejects_a_wait_out_of_range(capsys: pytest.CaptureFixture[str],
                                               value: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["kvm", "reproduce", "--wait-ms", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "argument --wait-ms" in err and "1..60000" in err
