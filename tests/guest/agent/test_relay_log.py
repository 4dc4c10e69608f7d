"""Relay mode (agent.S `relay`, for Bochs): the ROM's flag, and cutting port 0xE9's log of a run
on several CPUs back into each CPU's own log."""

from __future__ import annotations

import pytest

from apiclab.guest.agent import log
from apiclab.guest.agent.image import (
    PROGRAM_OFFSET,
    PROGRAM_SLOT_SIZE,
    RELAY_FLAG_OFFSET,
    agent_binary,
    build_image,
)
from apiclab.guest.program import End, Mode, Program, Read

TWO = Program((Read(0x20, cpu=1), End()), mode=Mode.XAPIC_PM32, cpus=2)
CPU0 = "@S000000000000100001\n@R0000000000003000" + "00000020" + "0" * 16 + "\n" \
       "@E0000000000005000\n"
CPU1 = "@S000000000000200001\n@R0000000000004000" + "00000020" + "0" * 14 + "01\n"


def test_relay_sets_one_byte_after_the_program_slot_and_the_default_leaves_it_clear() -> None:
    assert RELAY_FLAG_OFFSET == PROGRAM_OFFSET + PROGRAM_SLOT_SIZE
    assert agent_binary()[RELAY_FLAG_OFFSET] == 0
    plain, relayed = build_image(TWO), build_image(TWO, relay=True)
    assert plain[RELAY_FLAG_OFFSET] == 0 and relayed[RELAY_FLAG_OFFSET] == 1
    assert [i for i in range(len(plain)) if plain[i] != relayed[i]] == [RELAY_FLAG_OFFSET]


def test_a_relayed_log_splits_into_each_cpus_log_at_the_markers() -> None:
    # CPU 0's records as they happened, Bochs' own lines around them, then CPU 1's relayed
    text = "00000000000i[      ] Bochs banner\n" + CPU0 + "=01\n" + CPU1 + "=00\n" \
        + "Shutdown port: shutdown requested\n"
    parts = log.split_relayed(text.encode(), 2)
    assert [log.records(p) for p in parts] == [log.records(CPU0), log.records(CPU1)]
    # decoded, they are what the two ports of QEMU or KVM would have given
    assert log.decode_cpus(parts, 1_000).events == log.decode_cpus([CPU0, CPU1], 1_000).events


def test_a_cpu_that_logged_nothing_gets_an_empty_log() -> None:
    parts = log.split_relayed(CPU0 + "=02\n=01\n" + CPU1 + "=00\n", 3)
    assert parts[2].strip() == "" and log.records(parts[1]) == log.records(CPU1)


@pytest.mark.parametrize(("text", "message"), [
    (CPU0 + "=01!\n" + CPU1 + "=00\n", "CPU 1's records overflowed"),
    (CPU0 + "=02\n" + CPU1, "CPU 2, the run has 2"),
    (CPU0 + "=0G\n", "is not hex digits"),
])
def test_an_overflowed_or_impossible_relay_is_an_error(text: str, message: str) -> None:
    with pytest.raises(log.AgentLogError, match=message):
        log.split_relayed(text, 2)
