"""The bug catalogue as regression: for each modelled KVM change, the search must find a
counterexample under a profile that has the bug and none, within the bound, under one that
does not (for a fix: before and after it; for a regression: after and before it).

Each entry names the commit (`apiclab.hypervisor.profiles`, docs/profiles.md), the symptom a
user saw, the property that catches it and the scenario family whose choices reach it. Changes of
the same family the model cannot show yet are listed in NOT_MODELLED, with what it would take.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiclab.explore.families import get_family
from apiclab.explore.properties import BUILTIN
from apiclab.explore.search import Executor, Progress, SearchResult, search
from apiclab.hypervisor.profiles import (
    APICV_ACTIVATION_SVI,
    CLEAR_PIR,
    CLEAR_PIR_FIRST,
    FIRE_EXPIRED,
    NO_IRR_UPDATE_HOOK,
    RESET_RVI,
    get_profile,
)


@dataclass(frozen=True)
class Entry:
    commit: str
    title: str
    symptom: str
    property: str
    family: str
    buggy: str  # a profile that shows the bug
    fixed: str  # a profile that does not (for a regression: the one before it)
    apicv: bool


CATALOGUE: tuple[Entry, ...] = (
    Entry(
        RESET_RVI.commit, RESET_RVI.title,
        "Windows 7 BSOD 0x5C (0x10B, 3, 0, 0) on reboot: a vector pending at the reset stays in "
        "RVI, is delivered with VIRR clear, stays in service and blocks the HAL clock "
        "(first fixed in v3.19; stock 3.18 still has it)",
        "clock-tick", "reboot", "kvm-3.18", "kvm-3.19", True,
    ),
    Entry(
        CLEAR_PIR.commit, CLEAR_PIR.title,
        "an interrupt posted while QEMU handled the reset (vCPU outside the guest) survives "
        "KVM_SET_LAPIC in the PIR and is injected into the rebooted guest, whose early-boot "
        "stubs leave it in service (the guest-visible symptom is the model's inference from "
        "the commit's title; fixed in v4.11)",
        "no-delivery-across-reset", "reboot", "kvm-3.19", "kvm-4.11", True,
    ),
    Entry(
        CLEAR_PIR.commit, CLEAR_PIR.title,
        "from v4.4 (RVI rewritten at every entry) to v4.10 the same left-over PIR becomes the "
        "seed's BSOD 0x5C: the clock vector posted during the reset-port exit is synced into "
        "VIRR and RVI at the entry after the firmware enables the APIC, the firmware takes it "
        "without an APIC EOI and it blocks the HAL clock",
        "clock-tick", "reboot", "kvm-4.4", "kvm-4.11", True,
    ),
    Entry(
        f"{CLEAR_PIR.commit}/{CLEAR_PIR_FIRST.commit}", CLEAR_PIR_FIRST.title,
        "the guest freezes after loadvm (9cfec6d097c6: Android emulator, almost every time, "
        "APICv only): QEMU puts the APIC back with TMCCT = 0, so KVM >= 6.3 fires the one-shot "
        "timer inside KVM_SET_LAPIC; it is posted in PIR and wiped by 967235d32032's PIR "
        "clearing later in the same call (fixed in v6.7; 6.1.66 stable has the fix)",
        "restored-timer-fires", "snapshot", "kvm-6.3", "kvm-6.7", True,
    ),
    Entry(
        FIRE_EXPIRED.commit, FIRE_EXPIRED.title,
        "a restored one-shot timer whose count reads 0 (run out, or put back by QEMU without a "
        "current count) is not fired at the restore: the kernel re-armed it for a whole initial "
        "count, so it fires late by up to a whole period (fixed in v6.3)",
        "restored-timer-fires", "snapshot", "kvm-4.11", "kvm-6.3", False,
    ),
    Entry(
        NO_IRR_UPDATE_HOOK.commit, NO_IRR_UPDATE_HOOK.title,
        "a regression the model predicts from v6.14, not seen reported: KVM_SET_LAPIC no longer "
        "writes RVI and entry rewrites it only while the APIC is software-enabled, so the "
        "seed's stale RVI is back for a firmware that takes interrupts before it enables the "
        "APIC (SeaBIOS for QEMU enables it first, so a SeaBIOS guest is not affected)",
        "clock-tick", "reboot-bare-firmware", "kvm-6.14", "kvm-6.7", True,
    ),
    Entry(
        APICV_ACTIVATION_SVI.commit, APICV_ACTIVATION_SVI.title,
        "KVM fixes for 6.19-rc1, 'Update SVI when activating APICv': when an APICv inhibit is "
        "cleared while the guest handles an interrupt injected meanwhile, SVI is stale, the "
        "handler's EOI clears the wrong VISR bit and the vector stays in service (fixed in v6.19)",
        "no-stuck-in-service", "apicv-activation", "kvm-6.14", "kvm-6.19", True,
    ),
)


@dataclass(frozen=True)
class Unmodelled:
    commit: str  # "" when no commit is known
    title: str
    symptom: str
    why_not: str


NOT_MODELLED: tuple[Unmodelled, ...] = (
    Unmodelled(
        "", "Hang on reboot in FreeBSD guest on Linux KVM host (kvm list, 2025)",
        "multi-vCPU FreeBSD 14.3 guests hang on reboot with APICv on Linux 6.1.118 and 6.12.47 "
        "on Xeon 6710E (Sierra Forest), not on Ice Lake with the same software; "
        "enable_apicv=N avoids it",
        "both kernels carry every restore-time fix the model has, and the report depends on the "
        "CPU model and on SMP. Showing it would take several vCPUs with the INIT/SIPI path "
        "(kvm_lapic_reset, not KVM_SET_LAPIC) and whatever differs on Sierra Forest, for "
        "instance IPI virtualization, which Ice Lake lacks: a hypothesis, not a finding",
    ),
)


@dataclass
class EntryResult:
    entry: Entry
    buggy: SearchResult
    fixed: SearchResult

    @property
    def holds(self) -> bool:
        """The fix is visible: a counterexample before it, none after it."""
        return self.buggy.counterexample is not None and self.fixed.counterexample is None


def run_entry(
    entry: Entry,
    *,
    bound: int = 3,
    seed: int = 0,
    random_runs: int = 200,
    budget: float = 50.0,
    progress: Progress | None = None,
) -> EntryResult:
    family, prop = get_family(entry.family), BUILTIN[entry.property]

    def one(profile: str) -> SearchResult:
        executor = Executor(family, prop, get_profile(profile), entry.apicv)
        return search(
            executor, bound=bound, seed=seed, random_runs=random_runs, budget=budget,
            progress=progress,
        )

    return EntryResult(entry, one(entry.buggy), one(entry.fixed))
