"""One `kvm storm` as a JSON-ready document: the host's storm in place on /dev/kvm beside the
model's storm with the profile that matches the host. Shared by `apiclab kvm storm` and the
campaign's storm tasks, so both report the same thing."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable
from typing import Any

from apiclab.backends.base import BackendUnavailable
from apiclab.backends.kvm.backend import open_kvm
from apiclab.backends.kvm.info import host_info
from apiclab.backends.kvm.ioctls import KvmError
from apiclab.backends.kvm.profile_match import model_for_host
from apiclab.backends.kvm.storm import deviations, lapic_table, run_host_storm, run_model_storm
from apiclab.backends.kvm.storm_guest import (
    CLOCK_PERIOD_NS,
    FIRMWARE_US,
    IDLE_HLTS,
    TRAFFIC,
    storm_program,
)
from apiclab.errors import UserError
from apiclab.hypervisor.profiles import get_profile


def _resources() -> dict[str, int]:
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1
    return {"fds": fds, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def storm_document(device: str, reboots: int, pending: list[int], wait_ms: int,
                   profile: str | None = None, model_apicv: str = "host",
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the storm on `device` and on the model; KVM's refusals become one-line UserErrors."""
    try:
        kvm = open_kvm(device)
    except BackendUnavailable as e:
        raise UserError(str(e)) from None
    with kvm:
        try:
            info = host_info(kvm)
            match = model_for_host(info)
            if profile is not None:
                try:
                    get_profile(profile)
                except KeyError as e:
                    raise UserError(f"--profile: {e.args[0]}") from None
                match.update(profile=profile, why="chosen with --profile")
            if model_apicv != "host":
                match.update(apicv=model_apicv == "on",
                             why=match["why"] + f"; APICv {model_apicv} (--model-apicv)")
            tsc_hz = info["tsc_khz"] * 1000
            program = storm_program(tsc_hz, pending=pending, wait_ms=wait_ms)
            before = _resources()
            host = run_host_storm(kvm, program, reboots, progress=progress)
            after = _resources()
        except KvmError as e:
            raise UserError(f"KVM refused {e.ioctl}: {e.strerror}") from None
    model = run_model_storm(program, get_profile(match["profile"]), apicv=match["apicv"],
                            reboots=reboots, tsc_hz=tsc_hz)
    return {
        "reboots": reboots,
        "reboots_per_s": reboots / host.seconds if host.seconds else 0.0,
        "host": {
            "device": device,
            "module": info["module"], "kernel": info["kernel"], "apicv": info["apicv"],
            "tsc_khz": info["tsc_khz"],
            "outcomes": dict(host.outcomes),
            "seconds": round(host.seconds, 4),
            "exits": host.exits,
            "exits_per_reboot": round(host.exits / reboots, 2),
            "lapic_at_reboot": lapic_table(host.lapic_at_reboot, host.lapic_pages),
            "lapic_after_reset": lapic_table(host.lapic_after_reset, host.lapic_pages),
            "distinct_logs": len(host.traces),
        },
        "model": {
            "profile": model.profile, "apicv": model.apicv, "why": match["why"],
            "outcomes": dict(model.outcomes),
            "simulated_cycles": model.simulated, "period": model.period,
            "lapic_at_reboot": [{"reboots": n, **json.loads(page)}
                                for page, n in model.lapic_at_reboot.most_common()],
        },
        "deviations": deviations(host, model, program),
        "guest": {
            "pending": pending, "traffic": [v for v in TRAFFIC if v not in pending],
            "clock_vector": 0xD1, "clock_period_ns": CLOCK_PERIOD_NS,
            "firmware_us": FIRMWARE_US, "idle_hlts": IDLE_HLTS, "wait_ms": wait_ms,
        },
        "resources": {"before": before, "after": after},
    }
