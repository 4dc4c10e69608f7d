"""End to end on Bochs' VMX (cpu/vapic.cc): the probe ROM boots once per module, and each case's
outcome is checked against the SDM-worked values (conftest.py), not against the model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from apiclab.backends.bochs.backend import unavailable_reason
from apiclab.backends.bochs_vmx import runner
from apiclab.backends.bochs_vmx.cases import CASES
from apiclab.backends.bochs_vmx.result import EXIT_VMCALL, ProbeError, vectors
from apiclab.backends.bochs_vmx.runner import BochsProbe, run_probe

# skips with the backend's own one-line reason: bochs missing, or no VGA ROM for it
BOCHS_MISSING = unavailable_reason()
needs_bochs = pytest.mark.skipif(BOCHS_MISSING is not None, reason=f"{BOCHS_MISSING}")


@pytest.fixture(scope="module")
def probe() -> BochsProbe:
    return run_probe(timeout_s=30)


@needs_bochs
def test_stale_rvi_is_delivered_with_virr_clear_on_bochs(probe: BochsProbe) -> None:
    stale = next(c for c in CASES if c.name == "stale-rvi")
    assert (stale.rvi, stale.svi, stale.virr_vector, stale.visr_vector) == (0xE1, 0, 0, 0)
    got = probe.run.outcomes[stale.id]
    assert got.exit_reason == EXIT_VMCALL and got.exception is None
    assert got.delivered == (0xE1,)
    assert (got.rvi, got.svi, got.vppr) == (0, 0xE1, 0xE0)
    assert vectors(got.visr) == [0xE1]
    assert got.virr == 0


@needs_bochs
def test_clean_rvi_delivers_nothing_on_bochs(probe: BochsProbe) -> None:
    clean = next(c for c in CASES if c.name == "clean")
    got = probe.run.outcomes[clean.id]
    assert got.exit_reason == EXIT_VMCALL
    assert got.delivered == ()
    assert (got.rvi, got.svi, got.vppr, got.visr, got.virr) == (0, 0, 0, 0, 0)


@needs_bochs
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bochs_matches_the_sdm_worked_outcome(probe, case, sdm_worked) -> None:  # type: ignore[no-untyped-def]
    want = sdm_worked[case.name]
    got = probe.run.outcomes[case.id]
    assert got.exit_reason == EXIT_VMCALL, probe.run.lines[case.id]
    assert got.delivered == want.delivered
    assert (got.rvi, got.svi, got.vppr) == (want.rvi, want.svi, want.vppr)
    assert vectors(got.visr) == want.visr
    assert vectors(got.virr) == want.virr


@needs_bochs
def test_the_probe_ran_with_virtual_interrupt_delivery_and_x2apic_virtualization(
        probe: BochsProbe) -> None:
    controls = probe.run.controls
    assert controls["pin"] & 1  # external-interrupt exiting
    assert controls["proc"] & (1 << 21 | 1 << 28 | 1 << 31) == 1 << 21 | 1 << 28 | 1 << 31
    assert controls["proc2"] & 0x310 == 0x310  # virtualize x2APIC, APIC-register virt., VID
    assert probe.bochs_messages == ""  # no VM-entry check complained


@needs_bochs
def test_a_rom_that_never_ends_is_stopped_and_its_files_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spin = bytearray(0x10000)
    spin[0xFFF0:0xFFF2] = b"\xeb\xfe"  # jmp $ at the reset vector
    with pytest.raises(ProbeError, match="did not finish the VMX probe within 1 s"):
        run_probe(timeout_s=1, rom=bytes(spin))
    assert list(tmp_path.iterdir()) == []


def test_missing_bochs_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from apiclab.backends.base import BackendUnavailable

    def missing() -> str:
        raise BackendUnavailable("bochs is not installed (Debian packages bochs bochsbios)")

    monkeypatch.setattr(runner, "ready", missing)
    with pytest.raises(BackendUnavailable, match="bochs is not installed"):
        run_probe()
