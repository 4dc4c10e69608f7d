"""The state key a scenario reports at a checkpoint; it lives with the vCPU it reads
(`apiclab.hypervisor.state_key`), so the KVM storm can use it without importing explore."""

from __future__ import annotations

from apiclab.hypervisor.state_key import vcpu_state_key

__all__ = ["vcpu_state_key"]
