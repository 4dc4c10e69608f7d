"""A live QEMU over QMP, read with QEMU's own client library (`qemu.qmp`, PyPI).

Per vCPU (`query-cpus-fast`): `info lapic` and `info registers` through `human-monitor-command`
with its `cpu-index` (the text of `apiclab.diagnose.qemu_text`), `info ioapic` where the QEMU has
it (7.2 shows the IOAPIC under `info pic`), and `query-kvm`. Only queries: the guest's run state is
changed only with `pause=True` (`stop` before, `cont` after, and only if it was running).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from apiclab.diagnose import qemu_text
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.evidence import Evidence

TIMEOUT_S = 10.0
_HOST_PORT = re.compile(r"^(?:tcp:)?([\w.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$")


def address(spec: str) -> str | tuple[str, int]:
    """`unix:/path.sock`, a path, or `host:port`."""
    if spec.startswith("unix:"):
        return spec[5:]
    if spec.startswith("/") or spec.startswith("."):
        return spec
    m = _HOST_PORT.match(spec)
    if not m or not 0 < int(m[2]) < 65536:
        raise EvidenceError(f"--qmp {spec!r}: expected unix:/path.sock or host:port")
    return m[1].strip("[]"), int(m[2])


async def _hmp(qmp: Any, line: str, cpu: int | None = None) -> str:
    args: dict[str, object] = {"command-line": line}
    if cpu is not None:
        args["cpu-index"] = cpu
    return str(await qmp.execute("human-monitor-command", args))


async def _read(spec: str, pause: bool) -> Evidence:
    from qemu.qmp import QMPClient

    qmp = QMPClient("apiclab-diagnose")
    await qmp.connect(address(spec))
    try:
        status = await qmp.execute("query-status")
        running = bool(isinstance(status, dict) and status.get("running"))
        if pause and running:
            await qmp.execute("stop")
        try:
            return await _collect(qmp, status)
        finally:
            if pause and running:
                await qmp.execute("cont")
    finally:
        await qmp.disconnect()


async def _collect(qmp: Any, status: object) -> Evidence:
    kvm = await qmp.execute("query-kvm")
    cpus = await qmp.execute("query-cpus-fast")
    if not isinstance(cpus, list) or not cpus:
        raise EvidenceError("QEMU reported no vCPUs (query-cpus-fast)")
    text = []
    for cpu in cpus:
        index = int(cpu["cpu-index"])
        text.append(await _hmp(qmp, "info lapic", index))
        regs = await _hmp(qmp, "info registers", index)
        text.append(regs if regs.lstrip().startswith("CPU#") else f"CPU#{index}\n{regs}")
    evidence = qemu_text.parse("\n".join(text), "QMP info lapic")
    evidence.source = "qmp"
    evidence.notes = [n for n in evidence.notes if "info registers" not in n]
    ioapic = await _hmp(qmp, "info ioapic")
    if ioapic.startswith("unknown command"):
        ioapic = await _hmp(qmp, "info pic")
    clocks = clock_pins(ioapic)
    for cpu_evidence in evidence.cpus:
        cpu_evidence.clock_sources = dict(clocks)
    kvm_on = bool(isinstance(kvm, dict) and kvm.get("enabled"))
    evidence.machine = {
        "accelerator": "kvm" if kvm_on else "tcg",
        "run_state": status.get("status") if isinstance(status, dict) else None,
        "ioapic": _ioapic_summary(ioapic),
    }
    if kvm_on:
        evidence.notes.append(
            "KVM with the irqchip in the kernel: QEMU's `info lapic` is KVM_GET_LAPIC's page, so "
            "under APICv RVI, SVI and posted interrupts (VMCS, PI descriptor) are not shown; the "
            "IOAPIC state is KVM's, read back with KVM_GET_IRQCHIP")
    return evidence


# QEMU's `info pic` IOAPIC line (hw/intc/ioapic_common.c): "pin 2  0x00000000000000d1 dest=0
# vec=209  active-hi edge  fixed  physical" (a "masked" word when masked).
_PIN = re.compile(r"^\s*pin (\d+)\s+0x[0-9a-fA-F]+ dest=\d+ vec=(\d+)\s+(.*)$")
# PC wiring (QEMU hw/i386, ACPI MADT override): the PIT, or the HPET's timer 0 in legacy
# replacement mode, drives IOAPIC input 2; the RTC, or HPET timer 1, input 8.
_CLOCK_PINS = {2: "IOAPIC pin 2: the PIT, or the HPET in legacy replacement",
               8: "IOAPIC pin 8: the RTC, or HPET timer 1 in legacy replacement"}


def clock_pins(text: str) -> dict[int, str]:
    """vector -> clock source, for the unmasked IOAPIC pins a PC's clocks drive."""
    out = {}
    for line in text.splitlines():
        m = _PIN.match(line)
        if m and int(m[1]) in _CLOCK_PINS and "masked" not in m[3] and int(m[2]) >= 16:
            out[int(m[2])] = _CLOCK_PINS[int(m[1])]
    return out


def _ioapic_summary(text: str) -> str:
    """The IOAPIC's unmasked pins and its IRR lines, or what QEMU said instead."""
    pins = [ln.strip() for ln in text.splitlines()
            if ln.strip().startswith("pin ") and "masked" not in ln]
    irr = [ln.strip() for ln in text.splitlines() if "IRR" in ln]
    if not pins and not irr:
        return text.strip().splitlines()[0] if text.strip() else "not shown"
    return "; ".join(pins + irr)


def read(spec: str, *, pause: bool = False, timeout_s: float = TIMEOUT_S) -> Evidence:
    """The live QEMU's evidence; any failure to talk QMP is one EvidenceError line."""
    target = address(spec)
    # qemu.qmp logs each failure itself; the user gets our one line, not its log records.
    quiet = logging.getLogger("qemu.qmp")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        return asyncio.run(asyncio.wait_for(_read(spec, pause), timeout_s))
    except EvidenceError:
        raise
    except TimeoutError:
        raise EvidenceError(f"--qmp {spec}: no QMP answer within {timeout_s:g} s") from None
    except Exception as e:  # qemu.qmp raises ConnectError, ExecuteError, OSError subclasses...
        cause = e.__cause__ or e
        why = " ".join(str(cause).split())[:120]
        raise EvidenceError(f"--qmp {spec}: not a QEMU monitor here ({target!r}): "
                            f"{type(cause).__name__}: {why}") from None
