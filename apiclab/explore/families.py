"""The scenario families `apiclab explore` searches: name → `run(profile, apicv, choices) -> Trace`.

Each family is a compact scenario built on the model's classes whose every variation is a draw
from `choices` (docs/design.md §3-§4 say which variations matter); zero draws are its simplest
run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apiclab.engine.choices import Choices
from apiclab.engine.trace import Trace
from apiclab.errors import UserError
from apiclab.explore.scenarios import activation, reboot, snapshot
from apiclab.hypervisor.profiles import Profile

Runner = Callable[[Profile, bool, Choices], Trace]


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    run: Runner


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(reboot.NAME, reboot.SUMMARY, reboot.run),
        Family(reboot.BARE_NAME, reboot.BARE_SUMMARY, reboot.run_bare_firmware),
        Family(snapshot.NAME, snapshot.SUMMARY, snapshot.run),
        Family(activation.NAME, activation.SUMMARY, activation.run),
    )
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise UserError(f"--scenario: unknown scenario family {name!r}; known: {known}") from None
