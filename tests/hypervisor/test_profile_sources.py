"""Every (commit, first release) pair a profile switch cites is the one docs/profiles.md records,
with its evidence; the release each profile stands for follows from its switches."""

from __future__ import annotations

import re
from pathlib import Path

from apiclab.hypervisor.profiles import ALIASES, PROFILES, SWITCHES, Sw, resolve

DOC = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"


def _doc_rows() -> dict[str, tuple[str, str, str, str]]:
    """commit -> (title, first release, function, evidence) from the 'Commits and releases' table."""
    text = DOC.read_text()
    section = text.split("## Commits and releases", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([0-9a-f]{12})` \| (.+?) \| (v\d+\.\d+) \| (.+?) \| (.+) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4), m.group(5))
    return rows


def test_the_docs_record_exactly_the_cited_commits_and_releases() -> None:
    rows = _doc_rows()
    cited = {s.introduced_by.commit: s.introduced_by for s in SWITCHES.values()}
    assert set(rows) == set(cited)
    for commit, source in cited.items():
        title, release, _, evidence = rows[commit]
        assert (title, release) == (source.title, source.kernel), commit
        assert len(evidence) > 40, f"{commit}: no evidence recorded"


def test_each_switch_names_the_functions_the_docs_name() -> None:
    rows = _doc_rows()
    for s in SWITCHES.values():
        documented = {f.strip() for f in rows[s.introduced_by.commit][2].split(",")}
        for function in s.function.split(","):
            name = function.strip().split(" ")[0]
            assert name in documented or name.startswith("kvm_apic_post_state_restore"), (
                s.name, name
            )


def test_the_corrected_releases() -> None:
    by_commit = {s.introduced_by.commit: s.introduced_by.kernel for s in SWITCHES.values()}
    assert by_commit["4114c27d450b"] == "v3.19"
    assert by_commit["967235d32032"] == "v4.11"
    assert by_commit["9cfec6d097c6"] == "v6.7"
    assert by_commit["ca0245d131b1"] == "v6.14"


def test_a_profile_has_no_switch_newer_than_its_release() -> None:
    def release(v: str) -> tuple[int, int]:
        major, minor = v.removeprefix("v").split(".")
        return int(major), int(minor)

    for p in PROFILES.values():
        for s in SWITCHES.values():
            if p.on(s.name):
                assert release(s.introduced_by.kernel) <= release(p.kernel), (p.name, s.name)
            elif p.name not in ("kvm-3.17", "kvm-3.18"):
                # a switch the profile lacks must be newer than it: profiles are cumulative
                assert release(s.introduced_by.kernel) > release(p.kernel), (p.name, s.name)


def test_stock_3_18_is_before_the_fix_and_3_19_has_it() -> None:
    assert not PROFILES["kvm-3.18"].on(Sw.RESTORE_SETS_RVI)
    assert PROFILES["kvm-3.19"].on(Sw.RESTORE_SETS_RVI)
    assert PROFILES["kvm-3.18"].on_switches == PROFILES["kvm-3.17"].on_switches


def test_old_names_say_what_they_map_to() -> None:
    assert "kvm-3.18" not in ALIASES
    for old, new in ALIASES.items():
        profile, note = resolve(old)
        assert profile.name == new and note is not None and new in note and old in note
    assert resolve("kvm-3.18") == (PROFILES["kvm-3.18"], None)
