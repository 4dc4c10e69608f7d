"""Explanation chains of counterexamples: each link carries registers and says what happened."""

from typing import Any

from apiclab.explore.explain import explain, format_chain
from apiclab.explore.families import FAMILIES
from apiclab.explore.properties import BUILTIN
from apiclab.explore.search import Executor
from apiclab.hypervisor.profiles import PROFILES


def chain_of(
    prop: str, profile: str, choices: list[int], apicv: bool = True
) -> list[dict[str, Any]]:
    p = BUILTIN[prop]
    run = Executor(FAMILIES[p.family], p, PROFILES[profile], apicv).replay(choices)[1]
    assert run.violation is not None
    return explain(run.events, p, run.violation)


def test_the_seed_chain_runs_from_the_stale_rvi_to_the_bugcheck_and_the_verdict() -> None:
    chain = chain_of("clock-tick", "kvm-3.17", [1, 7, 1])
    steps = [link["step"] for link in chain]
    assert steps.index("restore") < steps.index("stale-delivery") < steps.index("bugcheck")
    assert steps[-1] == "violation" and "clock-tick" in chain[-1]["text"]
    restore = chain[steps.index("restore")]
    assert restore["registers"]["rvi"] == 0xD1 and restore["registers"]["irr"] == []


def test_a_pir_leftover_is_named_and_no_blocked_clock_is_claimed() -> None:
    chain = chain_of("no-delivery-across-reset", "kvm-3.19", [1, 0, 2])
    text = format_chain(chain)
    assert "PIR still holds [0x51] from before" in text
    assert "never delivered" not in text
    assert "Vector 0xd1 delivered" in text and chain[-1]["registers"]["isr"] == [0x51]


def test_a_timer_wiped_by_the_restore_is_named() -> None:
    text = format_chain(chain_of("restored-timer-fires", "kvm-6.3", []))
    assert "PIR=[0xec]" in text and "is gone" in text and "TMCCT = 0" in text


def test_a_timer_re_armed_late_by_the_restore_is_named() -> None:
    text = format_chain(chain_of("restored-timer-fires", "kvm-4.11", [0, 0, 1], apicv=False))
    assert "TMCCT = 0" in text and "fired 1 ms later than that" in text


