"""The agent ROM with a guest program embedded: the one image every backend boots.

Layout (agent.S): 64 KiB, mapped at physical ROM_BASE = 0xF0000 (a PC also aliases it below
4 GiB, where the reset vector 0xFFFFFFF0 lands: SDM vol. 3A §9.1.4); the program's binary form
(`apiclab.guest.program.encode`) at ROM offset PROGRAM_OFFSET; the reset vector at 0xFFF0.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from apiclab.errors import ApiclabError
from apiclab.guest.program import Program, encode

ROM_SIZE = 0x10000
ROM_BASE = 0xF0000  # real-mode F000:0000
ROM_ALIAS_4G = 0x1_0000_0000 - ROM_SIZE  # where the reset vector's CS base 0xFFFF0000 points
PROGRAM_OFFSET = 0xC000  # agent.S: PROGRAM_SLOT
PROGRAM_SLOT_SIZE = 0x1200  # agent.S: PROGRAM_SIZE
# agent.S relay_flag: 1 = CPUs k > 0 keep their log lines in RAM and the CPU that stops the machine
# relays them to port 0xE9 (for an emulator with no device on their ports: Bochs)
RELAY_FLAG_OFFSET = PROGRAM_OFFSET + PROGRAM_SLOT_SIZE
RESET_VECTOR_OFFSET = 0xFFF0


class ImageError(ApiclabError, ValueError):
    """A program that does not fit the agent's program slot, or a damaged agent binary."""


@cache
def agent_binary() -> bytes:
    """The committed agent build (package data), with an empty program slot."""
    rom = resources.files("apiclab.guest.agent").joinpath("agent.bin").read_bytes()
    if len(rom) != ROM_SIZE:
        raise ImageError(f"agent.bin is {len(rom)} bytes, expected {ROM_SIZE}")
    if any(rom[PROGRAM_OFFSET:PROGRAM_OFFSET + PROGRAM_SLOT_SIZE]):
        raise ImageError("agent.bin's program slot is not empty: rebuild it from agent.S")
    return rom


def build_image(program: Program, *, relay: bool = False) -> bytes:
    """The 64 KiB ROM that runs `program` from the reset vector; with `relay`, its other CPUs'
    log lines reach port 0xE9 through RAM at the end of the run (agent.S `relay`,
    log.split_relayed) instead of their own ports."""
    blob = encode(program)
    if len(blob) > PROGRAM_SLOT_SIZE:
        raise ImageError(f"encoded program is {len(blob)} bytes; the slot holds {PROGRAM_SLOT_SIZE}")
    rom = bytearray(agent_binary())
    rom[PROGRAM_OFFSET:PROGRAM_OFFSET + len(blob)] = blob
    rom[RELAY_FLAG_OFFSET] = 1 if relay else 0
    return bytes(rom)
