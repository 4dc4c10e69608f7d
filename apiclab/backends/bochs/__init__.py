"""Bochs 2.7: its own local APIC (`cpu/apic.cc`) on a Skylake-X model, driven by the agent ROM.

    backend = BochsBackend()
    result = backend.run(program)        # xapic-pm32 and x2apic-real programs both run
    result.trace.guest_visible()

The agent ROM is the `romimage`; `port_e9_hack` copies its port-0xE9 records to Bochs' standard
output, where `apiclab.guest.agent.log` finds them among Bochs' own lines; the agent ends the run
with "Shutdown" to port 0x8900. The Debian build stops at its debugger prompt first: the backend
answers "c". A run that does not end within the time-out is killed (and reaped).
"""

from __future__ import annotations

from apiclab.backends.bochs.backend import BochsBackend

__all__ = ["BochsBackend"]
