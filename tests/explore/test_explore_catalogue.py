"""The bug catalogue as regression: a counterexample before each fix, none after it."""

import pytest

from apiclab.explore.catalogue import CATALOGUE, Entry, run_entry
from apiclab.explore.families import FAMILIES
from apiclab.explore.properties import BUILTIN
from apiclab.explore.search import Executor, search
from apiclab.hypervisor.profiles import PROFILES, SWITCHES


def test_the_catalogue_covers_the_three_fixes() -> None:
    commits = " ".join(e.commit for e in CATALOGUE)
    for commit in ("4114c27d450b", "967235d32032", "9cfec6d097c6", "8e6ed96cdd50", "ca0245d131b1",
                   "b2849bec936b"):
        assert commit in commits


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.commit)
def test_entry_is_well_formed(entry: Entry) -> None:
    assert entry.property in BUILTIN and entry.buggy in PROFILES and entry.fixed in PROFILES
    assert entry.symptom and entry.title
    cited = {s.introduced_by.commit for s in SWITCHES.values()}
    assert any(part in cited for part in entry.commit.split("/"))


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.commit)
def test_buggy_profile_fails_and_fixed_profile_survives(entry: Entry) -> None:
    result = run_entry(entry, bound=3, random_runs=50)
    assert result.buggy.counterexample is not None, "the search must find the bug"
    assert result.fixed.counterexample is None, "the fix must survive the same search"
    assert result.fixed.coverage.exhaustive_complete
    assert result.holds
    minimal = result.buggy.counterexample.minimal
    assert minimal.violation is not None and len(minimal.choices) <= 4


@pytest.mark.parametrize("prop", sorted(BUILTIN))
@pytest.mark.parametrize("apicv", [True, False])
def test_the_newest_profile_keeps_every_property(prop: str, apicv: bool) -> None:
    p = BUILTIN[prop]
    executor = Executor(FAMILIES[p.family], p, PROFILES["kvm-6.19"], apicv)
    result = search(executor, bound=2, random_runs=20)
    assert result.counterexample is None and result.coverage.exhaustive_complete
