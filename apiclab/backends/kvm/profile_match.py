"""Which model profile describes the host's KVM: the newest profile whose first kernel is not newer
than the running kernel, with APICv as the host's vendor module reports it.

Profiles are data with the kernel that first had their behaviour (apiclab.hypervisor.profiles), so
the match needs no profile name: a 6.18 host gets the newest profile up to 6.18.
"""

from __future__ import annotations

import re
from typing import Any

from apiclab.hypervisor.profiles import PROFILES, Profile


def kernel_version(release: str | None) -> tuple[int, int] | None:
    """(major, minor) of a kernel release string such as "6.18.44-fc" or "v3.18"."""
    if not release:
        return None
    match = re.match(r"v?(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


def matching_profile(kernel_release: str | None) -> tuple[Profile, str]:
    """The profile for a host kernel, and one line saying why it was chosen."""
    ordered = sorted(PROFILES.values(), key=lambda p: kernel_version(p.kernel) or (0, 0))
    host = kernel_version(kernel_release)
    if host is None:
        newest = ordered[-1]
        return newest, f"kernel version unknown: the newest profile, {newest.name}"
    chosen = ordered[0]
    for profile in ordered:
        version = kernel_version(profile.kernel)
        if version is not None and version <= host:
            chosen = profile
    return chosen, (f"kernel {host[0]}.{host[1]} >= {chosen.kernel}, the newest profile not "
                    "newer than it")


def model_for_host(info: dict[str, Any]) -> dict[str, Any]:
    """{"profile", "apicv", "why"} for a `host_info` dictionary."""
    profile, why = matching_profile(info.get("kernel"))
    apicv = bool(info.get("apicv", {}).get("available"))
    return {"profile": profile.name, "apicv": apicv,
            "why": why + ("; APICv on" if apicv else "; APICv off, as on the host")}
