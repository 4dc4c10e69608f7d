"""`apiclab profiles`: each profile's release, each switch's commit, title, release and function."""

from __future__ import annotations

import json

import pytest

from apiclab.cli.main import main
from apiclab.hypervisor.profiles import PROFILES, SWITCHES


def test_profiles_json_lists_releases_and_every_switch_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["profiles"]) == set(PROFILES)
    assert doc["profiles"]["kvm-3.19"]["kernel"] == "v3.19"
    assert doc["profiles"]["kvm-3.18"]["kernel"] == "v3.18"
    for name, p in doc["profiles"].items():
        assert p["kernel"] == PROFILES[name].kernel
        assert {s["name"] for s in p["switches"]} == {str(s) for s in PROFILES[name].on_switches}
        for s in p["switches"]:
            assert {"commit", "title", "first_release", "function"} <= set(s)
    reset = next(s for s in doc["profiles"]["kvm-3.19"]["switches"] if s["name"] == "restore_sets_rvi")
    assert reset["commit"] == "4114c27d450b" and reset["first_release"] == "v3.19"
    assert "kvm_apic_post_state_restore" in reset["function"]
    assert set(doc["switches"]) == {str(s) for s in SWITCHES}
    assert doc["aliases"] == {"kvm-4.10": "kvm-4.11", "kvm-6.6": "kvm-6.7"}


def test_profiles_text_shows_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[1:] == [p.kernel for p in PROFILES.values()]
    assert "4114c27d450b \"KVM: x86: reset RVI upon system reset\" (first in v3.19)" in out
    assert "kvm-6.6   old name for kvm-6.7" in out
