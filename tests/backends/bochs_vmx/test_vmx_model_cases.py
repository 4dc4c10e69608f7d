"""The model's outcome for each probe case, against values worked from the SDM by hand
(vol. 3C 325384-059US §29.1.3 PPR virtualization, §29.1.4 EOI virtualization, §29.2.1 evaluation,
§29.2.2 delivery), not against Bochs."""

from __future__ import annotations

import pytest

from apiclab.backends.bochs_vmx.cases import CASES
from apiclab.backends.bochs_vmx.result import EXIT_VMCALL, vectors
from apiclab.executors.model import predict


def test_every_case_has_an_sdm_worked_outcome(sdm_worked) -> None:  # type: ignore[no-untyped-def]
    assert {case.name for case in CASES} == set(sdm_worked)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_model_matches_the_sdm_worked_outcome(case, sdm_worked) -> None:  # type: ignore[no-untyped-def]
    want = sdm_worked[case.name]
    got = predict(case)
    assert got.delivered == want.delivered
    assert (got.rvi, got.svi, got.vppr) == (want.rvi, want.svi, want.vppr)
    assert vectors(got.visr) == want.visr
    assert vectors(got.virr) == want.virr
    assert got.exit_reason == EXIT_VMCALL


def test_stale_rvi_is_delivered_with_virr_clear_on_the_model() -> None:
    stale = next(c for c in CASES if c.name == "stale-rvi")
    assert (stale.rvi, stale.virr_vector, stale.visr_vector) == (0xE1, 0, 0)
    got = predict(stale)
    assert got.delivered == (0xE1,)
    assert (got.rvi, got.svi, got.vppr) == (0, 0xE1, 0xE0)
    assert vectors(got.visr) == [0xE1]
    assert got.virr == 0
