"""Bochs-VMX as an executor: the VMX probe ROM's cases on Bochs' VMX model.

The probe runs every case of `apiclab.backends.bochs_vmx.cases` in one boot; the executor boots
it on the first case asked for and answers the others from that boot (`probe` keeps the
evidence: Bochs' version, controls, raw lines). The model's side of the same cases is
`apiclab.executors.model.VmxModelExecutor`.
"""

from __future__ import annotations

from apiclab.backends.base import BackendUnavailable
from apiclab.backends.bochs_vmx.cases import VmxCase
from apiclab.backends.bochs_vmx.result import ProbeError, VmxOutcome
from apiclab.backends.bochs_vmx.runner import DEFAULT_TIMEOUT_S, BochsProbe, run_probe
from apiclab.executors.compare import differences, first_difference


class BochsVmxExecutor:
    name = "bochs-vmx"

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._probe: BochsProbe | None = None

    def probe(self) -> BochsProbe:
        """The probe's one boot (made on first use). Raises BackendUnavailable without Bochs,
        ProbeError when the probe does not run to its end."""
        if self._probe is None:
            self._probe = run_probe(timeout_s=self.timeout_s)
        return self._probe

    def can_run(self, case: VmxCase) -> str | None:
        try:
            probe = self.probe()
        except (BackendUnavailable, ProbeError) as e:
            return str(e)
        return None if case.id in probe.run.outcomes else f"the probe printed no @CASE {case.id}"

    def run(self, case: VmxCase, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> VmxOutcome:
        outcome = self.probe().run.outcomes.get(case.id)
        if outcome is None:
            raise ProbeError(f"the VMX probe printed no @CASE line for case {case.id}")
        return outcome


def differing_fields(predicted: VmxOutcome, observed: VmxOutcome) -> list[str]:
    """The names of the compared values (`VmxOutcome.fields`) where `observed` leaves
    `predicted`, in order; empty when they agree. Through the one comparison
    (`apiclab.executors.compare`), field by field."""
    expected, seen = list(predicted.fields().items()), list(observed.fields().items())
    if first_difference(expected, seen) is None:
        return []
    return [str(d.expected[0]) for d in differences(expected, seen) if d.expected is not None]
