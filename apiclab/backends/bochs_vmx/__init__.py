"""A bare-metal VMX hypervisor on Bochs: virtual-interrupt delivery checked on an independent CPU.

    probe = run_probe()                      # boots vmx_probe.bin in Bochs (~0.2 s)
    probe.run.outcomes[1].delivered          # (0xE1,): the stale RVI was delivered

`vmx_probe.S` (built by `build.py`, committed as `vmx_probe.bin`) turns on VMX, and for each case
of `cases.py` writes a VMCS with "virtual-interrupt delivery" and "virtualize x2APIC mode", sets
RVI/SVI and the virtual-APIC page, and runs a guest that enables interrupts, takes what is
delivered without EOI, optionally writes EOIs, and exits with VMCALL. The host prints RVI, SVI,
VPPR, VISR and VIRR after the exit; `result.py` decodes them. The model's prediction for the same
initial state is the model executor's (`apiclab.executors.model.VmxModelExecutor`, on
`apiclab.arch.vmx`); `apiclab vmx` compares the two (docs/vmx.md).
"""

from __future__ import annotations

from apiclab.backends.bochs_vmx.cases import CASES, VmxCase
from apiclab.backends.bochs_vmx.result import ProbeError, VmxOutcome
from apiclab.backends.bochs_vmx.runner import BochsProbe, run_probe

__all__ = ["CASES", "BochsProbe", "ProbeError", "VmxCase", "VmxOutcome", "run_probe"]
