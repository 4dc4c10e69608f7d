"""Batch mode of the agent: one emulator boot runs many programs, one per system reset.

The host loads a table into the guest's RAM at TABLE_ADDRESS (agent.S `batch_select`):

    "APBT", u32 count, u16 segment[count], then each program's binary form at segment * 16

The ROM itself is the plain agent (empty program slot). Each boot the agent takes the next case,
writes "@N" tsc index(8) to its log, runs the case exactly as a one-case boot would, and on its way
out resets the whole machine through the PIIX reset control register (port 0xCF9) instead of
stopping it, until the last case, which stops the emulator as usual. The reset gives the next case
the same CPU, local APIC, IOAPIC, PIT and 8259 state a fresh boot gives (the chipset resets them
all); what survives is RAM, where the agent rewrites everything it reads before using it.

`split` cuts the emulator's log at the "@N" records: one log per case, each decoded on its own.
A case whose log does not end with one of the agent's exit records ("@E" end, "@F" fault, "@X" bad
program) did not finish in the batch (it hung until the time-out or reset the machine by itself),
so the caller runs it alone.

Programs for several CPUs batch only in relay mode (agent.S `relay`, Bochs), all for the same
number of CPUs, with their table at TABLE_ADDRESS_SMP (CPU 1's own 64 KiB starts at 0x10000). The
agent clears what the CPUs share and the relay buffers before each case, and an application
processor started by the case's SIPI finds the case in the table too. `split(..., relayed=True)`
keeps the relay's "=" k lines, and a case has finished when its log holds an exit record and
ends with the relay's last line "=00" (the agent relays only on its way out).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from apiclab.guest.program import Program, encode

TABLE_ADDRESS = 0x10000  # agent.S BATCH_TABLE
TABLE_ADDRESS_SMP = 0x90000  # agent.S BATCH_TABLE_SMP
RAM_END = 0xA0000  # conventional memory; real mode reaches the programs by segment
PROGRAM_ALIGN = 16
TABLE_MAGIC = b"APBT"
FINAL_TAGS = frozenset("EFX")  # the agent's exit records: end, fault, no valid program
RELAY_LINE = re.compile(r"=[0-9A-F]{2}!?")  # agent.S relay: CPU k's part of the log follows


class BatchError(ValueError):
    """Programs that do not fit in one batch table."""


def capacity_left(used: int, program_size: int, address: int = TABLE_ADDRESS) -> bool:
    return address + used + program_size <= RAM_END


def table(programs: Sequence[Program], address: int = TABLE_ADDRESS) -> bytes:
    """The batch table for `programs`, to be loaded at `address` (TABLE_ADDRESS, or
    TABLE_ADDRESS_SMP for programs for several CPUs)."""
    blobs = [encode(p) for p in programs]
    header = 8 + 2 * len(blobs)
    offset = -(-header // PROGRAM_ALIGN) * PROGRAM_ALIGN
    segments: list[int] = []
    body = bytearray()
    for blob in blobs:
        segments.append((address + offset + len(body)) >> 4)
        body += blob + bytes(-len(blob) % PROGRAM_ALIGN)
    if address + offset + len(body) > RAM_END:
        raise BatchError(f"{len(programs)} programs take {offset + len(body)} bytes; a batch "
                         f"holds {RAM_END - address}")
    head = TABLE_MAGIC + struct.pack(f"<I{len(segments)}H", len(segments), *segments)
    return head + bytes(offset - len(head)) + bytes(body)


def chunks(programs: Sequence[Program], parts: int, *,
           several_by_cpus: bool = False) -> list[list[int]]:
    """Indices of `programs` in at most `parts` batches of similar size, each fitting one table.
    `several_by_cpus` (a backend that batches programs for several CPUs in one boot per CPU
    count, Bochs): all the programs for N > 1 CPUs go to the same batch, chosen by N, so each
    CPU count costs one boot, not one per batch; the one-CPU programs stay where they were."""
    parts = max(1, min(parts, len(programs)))
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in range(len(programs)):
        cpus = programs[i].cpus
        out[cpus % parts if several_by_cpus and cpus > 1 else i % parts].append(i)
    fitted: list[list[int]] = []
    for indices in out:
        current: list[int] = []
        used = 0
        for i in indices:
            # a program for several CPUs takes no room in this table: it runs alone, or in a
            # table of its own at TABLE_ADDRESS_SMP (Bochs, which fits it there)
            size = len(encode(programs[i])) + PROGRAM_ALIGN + 2 if programs[i].cpus == 1 else 0
            if current and not capacity_left(used + 64, size):
                fitted.append(current)
                current, used = [], 0
            current.append(i)
            used += size
        if current:
            fitted.append(current)
    return fitted


def split(text: str, count: int, *, relayed: bool = False) -> list[str | None]:
    """The log of each of `count` cases from a batch's log; None for a case that did not finish
    (no "@N" record for it, or its log does not end with an exit record; `relayed`: with the
    relay's lines kept, no exit record in it or no "=00" at its end)."""
    logs: list[list[str]] = [[] for _ in range(count)]
    seen: set[int] = set()
    current: int | None = None
    for line in text.splitlines():
        if not line.startswith("@") and not (relayed and RELAY_LINE.fullmatch(line)):
            continue
        if line.startswith("@N"):
            try:
                index = int(line[18:26], 16)
            except ValueError:
                current = None
                continue
            current = index if 0 <= index < count and index not in seen else None
            if current is not None:
                seen.add(current)
            continue
        if current is not None:
            logs[current].append(line)
    out: list[str | None] = []
    for lines in logs:
        if relayed:
            finished = bool(lines) and lines[-1] == "=00" and any(
                line.startswith("@") and line[1:2] in FINAL_TAGS for line in lines)
        else:
            finished = bool(lines) and lines[-1][1:2] in FINAL_TAGS
        out.append("\n".join(lines) + "\n" if finished else None)
    return out
