"""QEMU under TCG: its own userspace local APIC (`hw/intc/apic.c`), driven by the agent ROM.

    backend = QemuBackend()
    result = backend.run(program)        # program.mode must be xapic-pm32 on QEMU 7.2 TCG
    result.trace.guest_visible()

The agent ROM is the firmware (`-bios`); its port-0xE9 records go through `isa-debugcon` into a
file and are decoded by `apiclab.guest.agent.log`; it ends the run through `isa-debug-exit` at port
0x501. A run that does not end within the time-out is killed (and reaped) and reported as timed out.
"""

from __future__ import annotations

from apiclab.backends.qemu.backend import QemuBackend

__all__ = ["QemuBackend"]
