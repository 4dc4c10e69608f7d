"""The bug catalogue as regression: for each modelled KVM fix, the search must find a
counterexample under the profile before it and none, within the bound, under the profile after.

Each entry names the commit (docs/design.md §3, `apiclab.hypervisor.profiles`), the symptom a user
saw, the property that catches it and the scenario family whose choices reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiclab.explore.families import get_family
from apiclab.explore.properties import BUILTIN
from apiclab.explore.search import Executor, Progress, SearchResult, search
from apiclab.hypervisor.profiles import (
    CLEAR_PIR,
    CLEAR_PIR_FIRST,
    FIRE_EXPIRED,
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
    buggy: str  # profile before the fix
    fixed: str  # profile with the fix
    apicv: bool


CATALOGUE: tuple[Entry, ...] = (
    Entry(
        RESET_RVI.commit, RESET_RVI.title,
        "Windows 7 BSOD 0x5C (0x10B, 3, 0, 0) on reboot: a vector pending at the reset stays in "
        "RVI, is delivered with VIRR clear, stays in service and blocks the HAL clock",
        "clock-tick", "reboot", "kvm-3.17", "kvm-3.18", True,
    ),
    Entry(
        CLEAR_PIR.commit, CLEAR_PIR.title,
        "an interrupt posted while QEMU handled the reset (vCPU outside the guest) survives "
        "KVM_SET_LAPIC in the PIR and is injected into the rebooted guest, whose early-boot "
        "stubs leave it in service (the guest-visible symptom is the model's inference from "
        "the commit's title)",
        "no-delivery-across-reset", "reboot", "kvm-3.18", "kvm-4.10", True,
    ),
    Entry(
        f"{CLEAR_PIR.commit}/{CLEAR_PIR_FIRST.commit}", CLEAR_PIR_FIRST.title,
        "the guest freezes after loadvm (9cfec6d097c6: Android emulator, almost every time, "
        "APICv only): QEMU puts the APIC back with TMCCT = 0, so KVM >= 6.3 fires the one-shot "
        "timer inside KVM_SET_LAPIC; it is posted in PIR and wiped by 967235d32032's PIR "
        "clearing later in the same call",
        "restored-timer-fires", "snapshot", "kvm-6.3", "kvm-6.6", True,
    ),
    Entry(
        FIRE_EXPIRED.commit, FIRE_EXPIRED.title,
        "a restored one-shot timer whose count reads 0 (run out, or put back by QEMU without a "
        "current count) is not fired at the restore: the kernel re-armed it for a whole initial "
        "count, so it fires late by up to a whole period",
        "restored-timer-fires", "snapshot", "kvm-4.10", "kvm-6.3", False,
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
