"""The probe's cases: the initial virtual-interrupt state of each guest run.

The ROM (`vmx_probe.S`, label `cases`) holds the same table as 8-byte records
(id, RVI, SVI, VTPR, VIRR vector, VISR vector, EOIs, 0); `CASES` here is the Python side, and
`tests/backends/bochs_vmx/test_probe_build.py` checks that the two are the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

RECORD_SIZE = 8


@dataclass(frozen=True, slots=True)
class VmxCase:
    """Initial state at VM entry and what the guest does after STI.

    `virr_vector`/`visr_vector` are the single VIRR/VISR bit the hypervisor sets in the
    virtual-APIC page before entry (0 for none). The guest takes whatever is delivered with a
    handler that does not EOI, then writes its x2APIC EOI MSR `eois` times.
    """

    id: int
    name: str
    rvi: int
    svi: int
    vtpr: int
    virr_vector: int
    visr_vector: int
    eois: int
    what: str

    def record(self) -> bytes:
        """The case as the ROM's 8-byte record."""
        return bytes([self.id, self.rvi, self.svi, self.vtpr, self.virr_vector,
                      self.visr_vector, self.eois, 0])


CASES: tuple[VmxCase, ...] = (
    VmxCase(1, "stale-rvi", 0xE1, 0, 0, 0, 0, 0,
            "RVI=E1 with VIRR and VISR empty: delivered from RVI itself (§29.2.2)"),
    VmxCase(2, "clean", 0, 0, 0, 0, 0, 0,
            "RVI=0: nothing to recognize (§29.2.1)"),
    VmxCase(3, "stale-rvi-under-tpr", 0xE1, 0, 0xF0, 0, 0, 0,
            "RVI=E1 with VTPR=F0: VPPR=F0 at entry, RVI[7:4] not above it (§29.2.1)"),
    VmxCase(4, "stale-rvi-then-eoi", 0xE1, 0, 0, 0, 0, 1,
            "RVI=E1 delivered, then the guest's EOI retires SVI (§29.1.4)"),
    VmxCase(5, "stale-rvi-blocks-clock", 0xE1, 0, 0, 0xD1, 0, 0,
            "RVI=E1 over a pending clock D1: E1 in service holds D1 (the seed's mechanism)"),
    VmxCase(6, "stale-rvi-blocks-clock-then-eoi", 0xE1, 0, 0, 0xD1, 0, 1,
            "as stale-rvi-blocks-clock, then one EOI: D1 follows"),
    VmxCase(7, "visr-without-svi", 0xD1, 0, 0, 0xD1, 0xE1, 1,
            "VISR has E1 but SVI=0: VPPR comes from SVI (§29.1.3), so D1 is delivered; "
            "its EOI makes SVI=E1"),
    VmxCase(8, "virr-without-rvi", 0, 0, 0, 0xD1, 0, 0,
            "VIRR has D1 but RVI=0: evaluation reads RVI, not VIRR (§29.2.1): nothing"),
)


def rom_table() -> bytes:
    """The bytes the ROM's `cases` label must hold (the table ends with a zero id)."""
    return b"".join(case.record() for case in CASES) + b"\x00"
