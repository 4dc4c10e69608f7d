"""Expected outcome of each VMX probe case, worked by hand from SDM vol. 3C (325384-059US):

- VM entry: PPR virtualization (VPPR = VTPR if VTPR[7:4] >= SVI[7:4], else SVI & 0xF0, §29.1.3),
  then evaluation (recognized iff RVI[7:4] > VPPR[7:4], §29.2.1);
- delivery (§29.2.2): v = RVI; VISR[v] = 1; SVI = v; VPPR = v & 0xF0; VIRR[v] = 0;
  RVI = highest VIRR or 0; no re-evaluation;
- EOI virtualization (§29.1.4): VISR[SVI] = 0; SVI = highest VISR or 0; PPR virtualization;
  evaluation (the EOI-exit bitmap is zero).

Shared (fixture `sdm_worked`) by the model test and the Bochs test, so each implementation is
checked against the manual and not against the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Worked:
    delivered: tuple[int, ...]
    rvi: int
    svi: int
    vppr: int
    visr: list[int]
    virr: list[int]


SDM_WORKED = {
    # VPPR = 0 at entry; E > 0: E1 delivered from RVI although VIRR is empty
    "stale-rvi": Worked((0xE1,), rvi=0, svi=0xE1, vppr=0xE0, visr=[0xE1], virr=[]),
    "clean": Worked((), rvi=0, svi=0, vppr=0, visr=[], virr=[]),
    # VPPR = VTPR = F0; E is not above F: not recognized, RVI stays
    "stale-rvi-under-tpr": Worked((), rvi=0xE1, svi=0, vppr=0xF0, visr=[], virr=[]),
    # as stale-rvi, then EOI: VISR[E1] = 0, SVI = 0, VPPR = 0, RVI = 0: nothing more
    "stale-rvi-then-eoi": Worked((0xE1,), rvi=0, svi=0, vppr=0, visr=[], virr=[]),
    # E1 delivered; RVI = highest VIRR = D1; D is not above VPPR E0: the clock waits
    "stale-rvi-blocks-clock": Worked((0xE1,), rvi=0xD1, svi=0xE1, vppr=0xE0, visr=[0xE1],
                                     virr=[0xD1]),
    # then EOI: SVI = 0, VPPR = 0, D > 0: D1 delivered, not EOIed by its handler
    "stale-rvi-blocks-clock-then-eoi": Worked((0xE1, 0xD1), rvi=0, svi=0xD1, vppr=0xD0,
                                              visr=[0xD1], virr=[]),
    # VPPR from SVI = 0 (VISR's E1 is not consulted): D1 delivered; SVI = D1, VISR {D1, E1};
    # EOI retires SVI = D1, SVI = highest VISR = E1, VPPR = E0
    "visr-without-svi": Worked((0xD1,), rvi=0, svi=0xE1, vppr=0xE0, visr=[0xE1], virr=[]),
    # evaluation compares RVI = 0, not VIRR: nothing is delivered, D1 stays requested
    "virr-without-rvi": Worked((), rvi=0, svi=0, vppr=0, visr=[], virr=[0xD1]),
}


@pytest.fixture
def sdm_worked() -> dict[str, Worked]:
    """The SDM-worked outcome of each probe case, by case name."""
    return SDM_WORKED
