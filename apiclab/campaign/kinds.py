"""The registry of task kinds, by the name `apiclab campaign` knows them.

To add a kind: write a module with a class that has the
five methods of `apiclab.campaign.tasks.TaskKind`, add one line below, and a sub-parser in
`apiclab.cli.campaign_cmd` that turns its flags into the params its `plan` reads.
"""

from __future__ import annotations

from apiclab.campaign.explore_kind import ExploreKind
from apiclab.campaign.random_kind import RandomKind
from apiclab.campaign.storm_kind import StormKind
from apiclab.campaign.suite_kind import SuiteKind
from apiclab.campaign.tasks import TaskKind

KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> None:
    KINDS[kind.name] = kind


register(RandomKind())
register(SuiteKind())
register(ExploreKind())
register(StormKind())
