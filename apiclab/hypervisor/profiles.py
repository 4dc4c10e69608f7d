"""KVM behaviour as data: each profile is a table of switches, each switch citing its commit.

No subclass per kernel version (docs/design.md, "Profiles are data"): the KVM model asks a
profile `profile.on("restore_sets_rvi")` and `apiclab profiles` prints where each answer comes from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    """Where a behaviour comes from: a Linux commit (id, title, first kernel) or a document."""

    commit: str
    title: str
    kernel: str

    def cite(self) -> str:
        return f"{self.commit} \"{self.title}\" ({self.kernel})"


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    meaning: str
    introduced_by: Source  # the commit that turned the behaviour on (or changed it)


APICV_BASE = Source(
    "c7c9c56ca26f", "x86, apicv: add virtual interrupt delivery support", "v3.9"
)
RESET_RVI = Source("4114c27d450b", "KVM: x86: reset RVI upon system reset", "v3.18")
CLEAR_PIR = Source(
    "967235d32032", "KVM: vmx: clear pending interrupts on KVM_SET_LAPIC", "v4.10"
)
FIRE_EXPIRED = Source(
    "8e6ed96cdd50",
    "KVM: x86: fire timer when it is migrated and expired, and in oneshot mode",
    "v6.3",
)
CLEAR_PIR_FIRST = Source(
    "9cfec6d097c6", "KVM: x86: Fix lapic timer interrupt lost after loading a snapshot.", "v6.6"
)
NO_IRR_UPDATE_HOOK = Source(
    "ca0245d131b1", "KVM: x86: Remove hwapic_irr_update() from kvm_x86_ops", "v6.14"
)

SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in (
        Switch(
            "entry_sets_rvi_from_irr",
            "on KVM_REQ_EVENT, while the APIC is enabled and IRR is not empty, entry writes "
            "RVI = highest IRR (vmx_hwapic_irr_update returns early on -1)",
            APICV_BASE,
        ),
        Switch(
            "restore_sets_rvi",
            "KVM_SET_LAPIC writes RVI = highest IRR, or 0 when IRR is empty",
            RESET_RVI,
        ),
        Switch(
            "restore_clears_pir",
            "KVM_SET_LAPIC clears the posted-interrupt descriptor (PIR and ON)",
            CLEAR_PIR,
        ),
        Switch(
            "restore_fires_expired_oneshot",
            "KVM_SET_LAPIC fires at once a one-shot timer whose current count is 0 (before: "
            "re-armed for a whole initial count, so it fired late)",
            FIRE_EXPIRED,
        ),
        Switch(
            "restore_clears_pir_first",
            "the PIR clearing runs before the timer restarts, so a timer interrupt fired by the "
            "restore survives (before: it was posted, then wiped)",
            CLEAR_PIR_FIRST,
        ),
        Switch(
            "entry_recomputes_rvi",
            "RVI = highest VIRR (0 if none) before every entry, from vmx_sync_pir_to_irr; the "
            "restore path no longer writes RVI",
            NO_IRR_UPDATE_HOOK,
        ),
    )
}


@dataclass(frozen=True)
class Profile:
    """A KVM version as the set of switches that are on."""

    name: str
    kernel: str
    summary: str
    on_switches: frozenset[str]

    def on(self, switch: str) -> bool:
        if switch not in SWITCHES:
            raise KeyError(f"unknown profile switch {switch!r}")
        return switch in self.on_switches

    def sources(self) -> list[tuple[Switch, bool]]:
        return [(s, s.name in self.on_switches) for s in SWITCHES.values()]


def _profile(name: str, kernel: str, summary: str, *switches: str) -> Profile:
    for s in switches:
        if s not in SWITCHES:
            raise KeyError(s)
    return Profile(name, kernel, summary, frozenset(switches))


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _profile(
            "kvm-3.17", "v3.17", "before the fix: KVM_SET_LAPIC leaves RVI as it was",
            "entry_sets_rvi_from_irr",
        ),
        _profile(
            "kvm-3.18", "v3.18", "RVI reset on KVM_SET_LAPIC (the seed's fix)",
            "entry_sets_rvi_from_irr", "restore_sets_rvi",
        ),
        _profile(
            "kvm-4.10", "v4.10", "KVM_SET_LAPIC also clears PIR/ON; expired one-shot not fired",
            "entry_sets_rvi_from_irr", "restore_sets_rvi", "restore_clears_pir",
        ),
        _profile(
            "kvm-6.3", "v6.3",
            "expired one-shot fired on restore, then wiped from PIR (the snapshot timer bug)",
            "entry_sets_rvi_from_irr", "restore_sets_rvi", "restore_clears_pir",
            "restore_fires_expired_oneshot",
        ),
        _profile(
            "kvm-6.6", "v6.6", "PIR cleared before the timer restarts: restored interrupt kept",
            "entry_sets_rvi_from_irr", "restore_sets_rvi", "restore_clears_pir",
            "restore_fires_expired_oneshot", "restore_clears_pir_first",
        ),
        _profile(
            "kvm-6.14", "v6.14", "RVI derived from VIRR before every entry; no restore hook",
            "restore_clears_pir", "restore_fires_expired_oneshot", "restore_clears_pir_first",
            "entry_recomputes_rvi",
        ),
    )
}

PRE_FIX = "kvm-3.17"
FIXED = "kvm-3.18"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown profile {name!r}; known profiles: {known}") from None
