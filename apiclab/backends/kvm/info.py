"""What the host's KVM is: API version, the module that provides it, the capabilities apiclab
cares about, and whether hardware APIC virtualization (APICv / AVIC) is there.

The module is read from /sys/module (/proc/modules may be absent, e.g. in a minimal guest):
`kvm_intel` (VMX), `kvm_amd` (SVM) or another vendor module such as `kvm_pvm`
(docs/host.md). APICv is a property of the vendor module: kvm_intel's `enable_apicv` parameter,
kvm_amd's `avic`; any other module has no hardware virtual-interrupt delivery to offer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiclab.backends.kvm import ioctls as nr
from apiclab.backends.kvm.machine import CPUID_TSC_DEADLINE, CPUID_X2APIC
from apiclab.backends.kvm.system import Kvm

SYS_MODULE = Path("/sys/module")
CAPABILITIES = {
    "irqchip": nr.KVM_CAP_IRQCHIP,
    "split_irqchip": nr.KVM_CAP_SPLIT_IRQCHIP,
    "x2apic_api": nr.KVM_CAP_X2APIC_API,
    "tsc_control": nr.KVM_CAP_TSC_CONTROL,
    "get_tsc_khz": nr.KVM_CAP_GET_TSC_KHZ,
    "tsc_deadline_timer": nr.KVM_CAP_TSC_DEADLINE_TIMER,
    "signal_msi": nr.KVM_CAP_SIGNAL_MSI,
    "immediate_exit": nr.KVM_CAP_IMMEDIATE_EXIT,
    "irq_routing": nr.KVM_CAP_IRQ_ROUTING,
    "x86_disable_exits": nr.KVM_CAP_X86_DISABLE_EXITS,
    "max_vcpus": nr.KVM_CAP_MAX_VCPUS,
}
APICV_PARAMETERS = {
    "kvm_intel": "enable_apicv",  # VMX APIC virtualization + virtual-interrupt delivery
    "kvm_amd": "avic",  # AMD AVIC
}


def kvm_modules(root: Path = SYS_MODULE) -> list[str]:
    """The loaded vendor modules providing KVM (kvm_intel, kvm_amd, kvm_pvm, ...)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith("kvm_"))


def _parameter(root: Path, module: str, name: str) -> str | None:
    try:
        return (root / module / "parameters" / name).read_text().strip()
    except OSError:
        return None


def apicv(modules: list[str], root: Path = SYS_MODULE) -> dict[str, Any]:
    """{"available": bool, "source": where that was read}."""
    for module in modules:
        param = APICV_PARAMETERS.get(module)
        if param is None:
            continue
        value = _parameter(root, module, param)
        if value is not None:
            return {"available": value in ("Y", "1"),
                    "source": f"/sys/module/{module}/parameters/{param} = {value}"}
    return {"available": False,
            "source": "no kvm_intel/kvm_amd module with an APICv parameter (modules: "
                      f"{', '.join(modules) or 'none'})"}


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_info(kvm: Kvm) -> dict[str, Any]:
    """Everything `apiclab kvm info` reports, as JSON-ready data."""
    modules = kvm_modules()
    caps = {name: kvm.check_extension(cap) for name, cap in CAPABILITIES.items()}
    leaf1 = next((e for e in kvm.get_supported_cpuid() if e.function == 1), None)
    with kvm.create_vm() as vm:
        vm.create_irqchip()
        with vm.create_vcpu(0) as vcpu:
            tsc_khz = vcpu.get_tsc_khz()
    flags = _cpu_flags()
    return {
        "api_version": kvm.get_api_version(),
        "modules": modules,
        "module": modules[0] if len(modules) == 1 else (modules or None),
        "kernel": Path("/proc/sys/kernel/osrelease").read_text().strip()
        if Path("/proc/sys/kernel/osrelease").exists() else None,
        "capabilities": caps,
        "cpuid": {
            "x2apic": bool(leaf1 and leaf1.ecx & CPUID_X2APIC),
            "tsc_deadline": bool(leaf1 and leaf1.ecx & CPUID_TSC_DEADLINE),
        },
        "host_cpu": {"vmx": "vmx" in flags, "svm": "svm" in flags,
                     "hypervisor": "hypervisor" in flags},
        "apicv": apicv(modules),
        "tsc_khz": tsc_khz,
        "vcpu_mmap_size": kvm.get_vcpu_mmap_size(),
    }
