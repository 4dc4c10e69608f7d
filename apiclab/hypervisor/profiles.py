"""KVM behaviour as data: each profile is a table of switches, each switch citing its commit.

No subclass per kernel version (docs/design.md, "Profiles are data"): the KVM model asks a
profile `profile.on(Sw.RESTORE_SETS_RVI)` and `apiclab profiles` prints where each answer comes
from. Every switch names the commit, its title, the first mainline release that shipped it and the
kernel function it changes; docs/profiles.md records how each (commit, release) pair was checked,
and a test holds this table and that document together.

Profiles are named for the first release that has their behaviour, except the two pre-fix ones:
kvm-3.17 (the seed's name) and kvm-3.18, the last release without 4114c27d450b.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Sw(StrEnum):
    """The behaviour switches. An Enum, so a misspelt switch is a type error, not a silent False."""

    ENTRY_RVI_ON_REQ_EVENT = "entry_sets_rvi_from_irr"
    ENTRY_RVI_ZERO_WHEN_IRR_EMPTY = "entry_writes_rvi_zero"
    ENTRY_RVI_EVERY_ENTRY = "entry_rvi_every_entry"
    ENTRY_RVI_IN_SYNC_PIR_TO_IRR = "entry_rvi_in_sync_pir_to_irr"
    RESTORE_SETS_RVI = "restore_sets_rvi"
    RESTORE_CLEARS_PIR = "restore_clears_pir"
    RESTORE_FIRES_EXPIRED_ONESHOT = "restore_fires_expired_oneshot"
    RESTORE_CLEARS_PIR_FIRST = "restore_clears_pir_first"
    RESTORE_RVI_WRITE_REMOVED = "restore_rvi_write_removed"
    ACTIVATION_UPDATES_SVI = "activation_updates_svi"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a behaviour comes from: a Linux commit, its title, the first mainline release that
    shipped it, and how sure that release is (see docs/profiles.md)."""

    commit: str
    title: str
    kernel: str
    provenance: str

    def cite(self) -> str:
        return f"{self.commit} \"{self.title}\" (first in {self.kernel})"


@dataclass(frozen=True, slots=True)
class Switch:
    name: Sw
    meaning: str
    function: str  # the kernel function(s) the commit changes for this behaviour
    introduced_by: Source


APICV_BASE = Source(
    "c7c9c56ca26f", "x86, apicv: add virtual interrupt delivery support", "v3.9",
    "commit text read at a mirror of the kernel tree; release from the seed's table, not "
    "re-checked here",
)
RESET_RVI = Source(
    "4114c27d450b", "KVM: x86: reset RVI upon system reset", "v3.19",
    "commit id, author and date quoted on the kvm list (2015 FreeBSD thread); dated Nov 2014, "
    "after the v3.18 merge window; v3.19 from issue 16's check of release trees, not re-checked "
    "in a tree here; RHEL 7 carried it as a backport in 3.10.0-229.16.1",
)
PI_BLOCKED = Source(
    "bf9f6ac8d749", "KVM: Update Posted-Interrupts Descriptor when vCPU is blocked", "v4.4",
    "named and dated (2015-09-18) by b95234c84004's message as the commit after which the PIR "
    "is checked on every entry; first release v4.4 from its date, not checked in a release tree",
)
SYNC_PIR_RVI = Source(
    "b95234c84004", "kvm: x86: do not use KVM_REQ_EVENT for APICv interrupt injection", "v4.11",
    "commit message read at a mirror (moves the RVI update after IN_GUEST_MODE); release v4.11 "
    "as in issue 16's check of release trees, not re-checked here",
)
CLEAR_PIR = Source(
    "967235d32032", "KVM: vmx: clear pending interrupts on KVM_SET_LAPIC", "v4.11",
    "id and title quoted by 9cfec6d097c6's Fixes: tag; release v4.11 (4.10 has no "
    "vmx_apicv_post_state_restore) as in issue 16's check of release trees",
)
FIRE_EXPIRED = Source(
    "8e6ed96cdd50",
    "KVM: x86: fire timer when it is migrated and expired, and in oneshot mode",
    "v6.3",
    "9cfec6d097c6's message: the freeze shows 'with kernel version 6.3-rc1 or above', after "
    "this commit",
)
CLEAR_PIR_FIRST = Source(
    "9cfec6d097c6", "KVM: x86: Fix lapic timer interrupt lost after loading a snapshot.", "v6.7",
    "posted 2023-09-13 after the v6.6 merge window; queued for 6.5-stable on 2023-11-24, after "
    "v6.7-rc1; the stable diff also adds the pre-restore call to kvm_lapic_reset",
)
NO_IRR_UPDATE_HOOK = Source(
    "ca0245d131b1", "KVM: x86: Remove hwapic_irr_update() from kvm_x86_ops", "v6.14",
    "the kvm_apic_set_state hunk (hwapic_irr_update dropped) seen in kvm-list diffs of 2025; "
    "release v6.14 as in issue 16's check, not re-checked here",
)
APICV_ACTIVATION_SVI = Source(
    "b2849bec936b", "KVM: VMX: Update SVI during runtime APICv activation", "v6.19",
    "in the kernel.org push log of Linus' master of 2025-12-20 through the kvm-x86-fixes-6.19-rc1 "
    "merge ('KVM fixes for 6.19-rc1': 'Update SVI when activating APICv'), so first in v6.19; "
    "backported to 6.12.y and 6.18.y in June 2026",
)

_SWITCHES = (
    Switch(
        Sw.ENTRY_RVI_ON_REQ_EVENT,
        "on KVM_REQ_EVENT, while the APIC is enabled (kvm_lapic_enabled) and IRR is not empty, "
        "entry writes RVI = highest IRR (vmx_hwapic_irr_update returns early on -1)",
        "vcpu_enter_guest, vmx_hwapic_irr_update",
        APICV_BASE,
    ),
    Switch(
        Sw.ENTRY_RVI_ZERO_WHEN_IRR_EMPTY,
        "the early return on an empty IRR is gone outside guest mode: such an entry writes RVI = 0",
        "vmx_hwapic_irr_update, vmx_set_rvi",
        RESET_RVI,
    ),
    Switch(
        Sw.ENTRY_RVI_EVERY_ENTRY,
        "RVI is rewritten before every entry while the APIC is enabled, not only on KVM_REQ_EVENT "
        "(VT-d posted interrupts set no request)",
        "vcpu_enter_guest",
        PI_BLOCKED,
    ),
    Switch(
        Sw.ENTRY_RVI_IN_SYNC_PIR_TO_IRR,
        "the per-entry RVI write moves into vmx_sync_pir_to_irr, after IN_GUEST_MODE, still only "
        "if kvm_lapic_enabled: no change a single-vCPU model can observe",
        "vmx_sync_pir_to_irr, vcpu_enter_guest",
        SYNC_PIR_RVI,
    ),
    Switch(
        Sw.RESTORE_SETS_RVI,
        "KVM_SET_LAPIC writes RVI = highest IRR, or 0 when IRR is empty",
        "kvm_apic_post_state_restore (later kvm_apic_set_state)",
        RESET_RVI,
    ),
    Switch(
        Sw.RESTORE_CLEARS_PIR,
        "KVM_SET_LAPIC clears the posted-interrupt descriptor (PIR and ON)",
        "vmx_apicv_post_state_restore",
        CLEAR_PIR,
    ),
    Switch(
        Sw.RESTORE_FIRES_EXPIRED_ONESHOT,
        "KVM_SET_LAPIC fires at once a one-shot timer whose current count is 0 (before: "
        "re-armed for a whole initial count, so it fired late)",
        "set_target_expiration, __start_apic_timer",
        FIRE_EXPIRED,
    ),
    Switch(
        Sw.RESTORE_CLEARS_PIR_FIRST,
        "the PIR clearing runs before the timer restarts, so a timer interrupt fired by the "
        "restore survives (before: it was posted, then wiped); kvm_lapic_reset clears PIR too",
        "vmx_apicv_pre_state_restore, kvm_apic_set_state, kvm_lapic_reset",
        CLEAR_PIR_FIRST,
    ),
    Switch(
        Sw.RESTORE_RVI_WRITE_REMOVED,
        "KVM_SET_LAPIC no longer writes RVI: entry's write in vmx_sync_pir_to_irr is the only "
        "one, and it runs only while the APIC is software-enabled",
        "kvm_apic_set_state, kvm_lapic_reset",
        NO_IRR_UPDATE_HOOK,
    ),
    Switch(
        Sw.ACTIVATION_UPDATES_SVI,
        "when APICv is activated at run time (an inhibit cleared), SVI is set to the highest ISR "
        "bit (before: it kept its old value, so the guest's EOI for a vector in service at the "
        "activation cleared the wrong VISR bit)",
        "__kvm_vcpu_update_apicv, kvm_apic_update_hwapic_isr",
        APICV_ACTIVATION_SVI,
    ),
)

SWITCHES: dict[Sw, Switch] = {s.name: s for s in _SWITCHES}


@dataclass(frozen=True)
class Profile:
    """A KVM version as the set of switches that are on."""

    name: str
    kernel: str  # the mainline release the profile stands for
    summary: str
    on_switches: frozenset[Sw]

    def on(self, switch: Sw) -> bool:
        if not isinstance(switch, Sw):  # a plain string would compare equal or silently miss
            raise TypeError(f"profile switch must be an Sw member, not {switch!r}")
        return switch in self.on_switches

    def sources(self) -> list[tuple[Switch, bool]]:
        return [(s, s.name in self.on_switches) for s in SWITCHES.values()]

    def source_of(self, switch: Sw) -> Source:
        return SWITCHES[switch].introduced_by


_PRE_FIX = (Sw.ENTRY_RVI_ON_REQ_EVENT,)
_FIX = (*_PRE_FIX, Sw.ENTRY_RVI_ZERO_WHEN_IRR_EMPTY, Sw.RESTORE_SETS_RVI)
_EVERY = (*_FIX, Sw.ENTRY_RVI_EVERY_ENTRY)
_V411 = (*_EVERY, Sw.ENTRY_RVI_IN_SYNC_PIR_TO_IRR, Sw.RESTORE_CLEARS_PIR)
_V63 = (*_V411, Sw.RESTORE_FIRES_EXPIRED_ONESHOT)
_V67 = (*_V63, Sw.RESTORE_CLEARS_PIR_FIRST)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "kvm-3.17", "v3.17", "before the fix: KVM_SET_LAPIC leaves RVI as it was",
            frozenset(_PRE_FIX),
        ),
        Profile(
            "kvm-3.18", "v3.18", "the last release before the fix: as kvm-3.17",
            frozenset(_PRE_FIX),
        ),
        Profile(
            "kvm-3.19", "v3.19", "RVI reset on KVM_SET_LAPIC, and an entry with IRR empty writes "
            "RVI = 0 (the seed's fix)",
            frozenset(_FIX),
        ),
        Profile(
            "kvm-4.4", "v4.4", "RVI rewritten before every entry while the APIC is enabled",
            frozenset(_EVERY),
        ),
        Profile(
            "kvm-4.11", "v4.11", "KVM_SET_LAPIC also clears PIR/ON; expired one-shot not fired",
            frozenset(_V411),
        ),
        Profile(
            "kvm-6.3", "v6.3",
            "expired one-shot fired on restore, then wiped from PIR (the snapshot timer bug)",
            frozenset(_V63),
        ),
        Profile(
            "kvm-6.7", "v6.7", "PIR cleared before the timer restarts: restored interrupt kept",
            frozenset(_V67),
        ),
        Profile(
            "kvm-6.14", "v6.14", "no RVI write on restore: RVI follows VIRR only at entries "
            "with the APIC software-enabled",
            frozenset((*_V67, Sw.RESTORE_RVI_WRITE_REMOVED)),
        ),
        Profile(
            "kvm-6.19", "v6.19", "run-time APICv activation sets SVI from the ISR",
            frozenset((*_V67, Sw.RESTORE_RVI_WRITE_REMOVED, Sw.ACTIVATION_UPDATES_SVI)),
        ),
    )
}

# Old profile names whose release was wrong, kept so scripts keep working; each resolves to the
# profile it always modelled and says so. (The old `kvm-3.18`, which modelled the fix, is not an
# alias: `kvm-3.18` now is stock 3.18, before the fix; the fix is kvm-3.19.)
ALIASES: dict[str, str] = {"kvm-4.10": "kvm-4.11", "kvm-6.6": "kvm-6.7"}

PRE_FIX = "kvm-3.17"
FIXED = "kvm-3.19"


def resolve(name: str) -> tuple[Profile, str | None]:
    """The profile a name stands for, and a note when the name is an old alias."""
    if name in PROFILES:
        return PROFILES[name], None
    if name in ALIASES:
        target = ALIASES[name]
        return PROFILES[target], (
            f"{name} is an old name for {target} (the change it models first shipped in "
            f"{PROFILES[target].kernel})"
        )
    known = ", ".join(PROFILES)
    raise KeyError(f"unknown profile {name!r}; known profiles: {known}")


def get_profile(name: str) -> Profile:
    return resolve(name)[0]
