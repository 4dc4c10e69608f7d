"""Which runs each command draws, as stories (`apiclab.report.story`): the first failing
reboot beside a healthy one, a counterexample beside the same choices under the fix, a KVM run
beside the model's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apiclab.engine.trace import Event
from apiclab.guest.windows7 import Windows7Config
from apiclab.report.explain import explain_failure
from apiclab.report.story import Story, story_from_events
from apiclab.scenarios.win7_reboot import StormResult


def guest_vector_names(config: Windows7Config) -> dict[int, str]:
    """The vectors a Windows 7 guest gives meaning to, for lane labels and the page's key."""
    return {config.clock_vector: "clock (HAL)", config.ipi_vector: "IPI"}


def reproduce_stories(
    results: Sequence[StormResult], config: Windows7Config, tsc_hz: int
) -> list[Story]:
    """Per profile: its first failing reboot (with the explanation) and its first healthy one,
    all on one time axis aligned at the reset-port write; the reboot outcomes as a strip on the
    profile's first story (healthy cycles summarised, not drawn)."""
    stories: list[Story] = []
    for r in results:
        process = f"{r.profile} (APICv {'on' if r.apicv else 'off'})"
        runs: list[tuple[str, list[Event], list[dict[str, Any]]]] = []
        if r.first_failure:
            n = (r.first_failure_index or 0) + 1
            runs.append((f"{process}: first BSOD, reboot #{n}", r.first_failure,
                         explain_failure(r.first_failure, clock_vector=config.clock_vector)))
        if r.first_success:
            runs.append((f"{process}: a healthy reboot", r.first_success, []))
        for i, (title, events, chain) in enumerate(runs):
            stories.append(story_from_events(
                events, title=title, process=process, group="reboots", explanation=chain,
                clock_vector=config.clock_vector, tsc_hz=tsc_hz,
                outcomes=r.outcomes if i == 0 else None,
                notes=[f"{r.bsods} of {r.reboots} reboots failed"] if i == 0 else (),
            ))
    return stories


def explore_stories(
    found: tuple[str, Sequence[Event], Sequence[dict[str, Any]]],
    fixed: tuple[str, Sequence[Event]] | None,
    choices: Sequence[int],
    clock_vector: int,
) -> list[Story]:
    """The shrunk counterexample and, beside it, the same choices replayed under the profile
    with the fix (when there is one)."""
    profile, events, chain = found
    stories = [story_from_events(
        events, title=f"{profile}: counterexample {list(choices)}", process=profile,
        group="choices", explanation=chain, clock_vector=clock_vector,
    )]
    if fixed is not None:
        fixed_profile, fixed_events = fixed
        stories.append(story_from_events(
            fixed_events, title=f"{fixed_profile}: the same choices", process=fixed_profile,
            group="choices", clock_vector=clock_vector,
        ))
    return stories


def host_and_model_stories(
    case: str, title: str, host: Sequence[Event], model: Sequence[Event], summary: str = ""
) -> list[Story]:
    """One case run on the host's KVM and on the model, on one time axis (`kvm reproduce`)."""
    notes = [title] + ([summary] if summary else [])
    return [
        story_from_events(host, title=f"{case}: host KVM", process="host KVM", group=case,
                          notes=notes),
        story_from_events(model, title=f"{case}: model", process="model", group=case),
    ]
