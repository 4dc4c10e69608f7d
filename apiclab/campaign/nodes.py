"""What a node is, as far as interrupt virtualization goes: kernel, KVM module and APICv, CPU
model, and the versions of the emulators it would run. Nodes that describe themselves alike are
one *host kind*; a campaign runs the real-backend work once per host kind, on any of its nodes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apiclab.backends.base import Availability
from apiclab.backends.kvm.info import apicv, kvm_modules

# The fields that make two hosts behave differently; the node's name and address do not.
KIND_FIELDS = ("kernel", "cpu_model", "kvm_module", "vmx", "svm", "apicv", "backends")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def backend_availability() -> dict[str, Availability]:
    """Each backend's availability on this node, through the same probes `apiclab conform`
    uses (QEMU's `--version`, Bochs' banner, opening /dev/kvm)."""
    from apiclab.conform.backends import BACKEND_NAMES, make_backend

    return {name: make_backend(name).availability() for name in BACKEND_NAMES}


def describe() -> dict[str, Any]:
    """This node, as JSON-ready data."""
    modules = kvm_modules()
    flags = _flags()
    avail = backend_availability()
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "kvm_module": ",".join(modules) or None,
        "vmx": "vmx" in flags,
        "svm": "svm" in flags,
        "apicv": apicv(modules)["available"],
        "backends": {name: a.detail if a.available else None for name, a in avail.items()},
        "not_available": {name: a.detail for name, a in avail.items() if not a.available},
    }


def host_kind(description: dict[str, Any]) -> str:
    """A short stable name for the kind of host: readable prefix, hash of what matters."""
    key = {f: description.get(f) for f in KIND_FIELDS}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return f"{description.get('kernel', '?')}-{digest}"


def has_backend(description: Mapping[str, Any], name: str) -> bool:
    return bool((description.get("backends") or {}).get(name))
