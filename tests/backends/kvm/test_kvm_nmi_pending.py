"""The agent's `Handler.nmis` on the real KVM: NMIs sent from the NMI handler are held until its
IRET, and exactly one of them is taken (SDM vol. 3A §6.7.1; kvm-unit-tests test_pending_nmi)."""

from __future__ import annotations

import pytest

from apiclab.arch.registers import Reg
from apiclab.backends.kvm.backend import KvmBackend
from apiclab.guest.program import Cli, Handler, Program, Wait, Write

pytestmark = pytest.mark.usefixtures("kvm")  # skips, with the reason, where /dev/kvm is unusable


def test_nmis_sent_in_the_nmi_handler_give_exactly_one_more_after_its_read_back() -> None:
    program = Program(
        (Write(Reg.SVR, 0x1FF), Cli(), Write(Reg.ICR_LOW, 0x4400),
         Wait(vector=2, ticks=20_000_000, count=3)),
        {2: Handler(eoi=False, log=True, nmis=10)},
        Handler(eoi=False, log=True),
    )
    result = KvmBackend().run(program, timeout_s=5.0)
    kinds = [(e.kind, getattr(e, "vector", None)) for e in result.trace]
    nmis = [i for i, k in enumerate(kinds) if k == ("interrupt", 2)]
    reads = [i for i, (kind, _) in enumerate(kinds) if kind == "read"]
    # KVM here sometimes takes the held NMI only at a later exit (docs/conform.md), so where
    # the second run lands relative to the wait is not asserted: only that there is exactly
    # one, after the first run's ICR read-back, and the run ends.
    assert len(nmis) == 2, kinds
    assert len(reads) == 1 and nmis[0] < reads[0] < nmis[1], kinds
    assert kinds[-1] == ("end", None)
