"""`apiclab explore` end to end: exit status, the JSON contract, bad input, determinism."""

import json
from pathlib import Path
from typing import Any

import pytest

from apiclab.cli.main import main

Capture = pytest.CaptureFixture[str]


def explore_json(capsys: Capture, *args: str) -> tuple[int, Any]:
    code = main(["explore", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_kvm_3_17_clock_tick_violation_json(capsys: Capture) -> None:
    code, doc = explore_json(capsys, "--property", "clock-tick", "--profile", "kvm-3.17",
                             "--bound", "3")
    assert code == 1
    assert set(doc) == {"property", "profile", "violation", "counterexample", "coverage"}
    assert doc["property"] == "clock-tick" and doc["profile"] == "kvm-3.17"
    assert doc["violation"] is True
    assert set(doc["counterexample"]) == {"choices", "explanation"}
    assert doc["counterexample"]["choices"] == [1, 7, 1]
    steps = doc["counterexample"]["explanation"]
    assert [s["step"] for s in steps][-1] == "violation"
    stale = next(s for s in steps if s["step"] == "stale-delivery")
    assert stale["registers"]["svi"] == 0xD1 and stale["registers"]["isr"] == [0xD1]
    assert set(doc["coverage"]) == {"runs", "states", "bound", "seconds"}
    assert doc["coverage"]["bound"] == 3


def test_kvm_3_18_clock_tick_no_violation_json(capsys: Capture) -> None:
    code, doc = explore_json(capsys, "--property", "clock-tick", "--profile", "kvm-3.19",
                             "--bound", "2", "--random-runs", "20")
    assert code == 0
    assert doc["violation"] is False and doc["counterexample"] is None
    assert doc["coverage"]["runs"] > 20 and 1 <= doc["coverage"]["states"] < 20


def test_same_arguments_same_output_but_seconds(capsys: Capture) -> None:
    args = ("--property", "no-stuck-in-service", "--profile", "kvm-3.17", "--bound", "1",
            "--random-runs", "30", "--seed", "9")
    _, a = explore_json(capsys, *args)
    _, b = explore_json(capsys, *args)
    a["coverage"].pop("seconds")
    b["coverage"].pop("seconds")
    assert a == b


def test_text_output_shows_the_chain_and_the_choices(capsys: Capture) -> None:
    assert main(["explore", "--property", "restored-timer-fires", "--profile", "kvm-6.3",
                 "--bound", "2"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION" in out and "one-shot timer 0xec" in out
    assert "PIR=[0xec]" in out and "967235d32032" in out
    assert main(["explore", "--property", "restored-timer-fires", "--profile", "kvm-6.7",
                 "--bound", "2", "--random-runs", "10"]) == 0
    out = capsys.readouterr().out
    assert "no violation" in out and "coverage:" in out


def test_a_user_property_file_with_another_scenario(capsys: Capture, tmp_path: Path) -> None:
    path = tmp_path / "prop.py"
    path.write_text("def no_ipi(events):\n"
                    "    return 'IPI' if any(getattr(e, 'vector', None) == 0xE1 for e in events)"
                    " else None\n")
    code, doc = explore_json(capsys, "--property", f"{path}:no_ipi", "--profile",
                             "kvm-6.7", "--scenario", "snapshot", "--bound", "2")
    # one pending vector (fourth draw), the IPI (fourth of the family's device vectors)
    assert code == 1 and doc["counterexample"]["choices"] == [0, 0, 0, 1, 3]
    assert doc["counterexample"]["explanation"][-1]["text"].endswith("IPI.")


def test_a_user_property_that_raises_is_one_line_and_exit_2(
    capsys: Capture, tmp_path: Path
) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def check(events):\n    return events[10**6]\n")
    assert main(["explore", "--property", str(path), "--profile", "kvm-3.17"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "IndexError" in err


def test_catalogue_table(capsys: Capture) -> None:
    assert main(["explore", "--catalogue", "--bound", "2", "--random-runs", "10", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["catalogue"]
    assert len(rows) == 7 and all(r["holds"] for r in rows)
    pairs = {(r["buggy"]["profile"], r["fixed"]["profile"]) for r in rows}
    assert ("kvm-3.18", "kvm-3.19") in pairs and ("kvm-6.3", "kvm-6.7") in pairs
    assert ("kvm-6.14", "kvm-6.7") in pairs  # the regression the corrected entry path shows
    assert ("kvm-6.14", "kvm-6.19") in pairs  # b2849bec936b, stale SVI after activation
    assert any("FreeBSD" in u["title"] for u in doc["not_modelled"])


def test_an_old_profile_name_says_what_it_maps_to(capsys: Capture) -> None:
    code = main(["explore", "--property", "restored-timer-fires", "--profile", "kvm-6.6",
                 "--bound", "1", "--random-runs", "0", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["profile"] == "kvm-6.7"
    assert "kvm-6.6 is an old name for kvm-6.7" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--property", "nope", "--profile", "kvm-3.17"], "unknown property 'nope'"),
        (["--property", "clock-tick", "--profile", "kvm-9.9"], "--profile 'kvm-9.9'"),
        (["--property", "clock-tick", "--profile", "kvm-3.17", "--bound", "-1"], "--bound"),
        (["--property", "clock-tick", "--profile", "kvm-3.17", "--bound", "x"], "--bound"),
        (["--property", "clock-tick", "--profile", "kvm-3.17", "--budget", "0"], "--budget"),
        (["--property", "clock-tick", "--profile", "kvm-3.17", "--apicv", "maybe"], "--apicv"),
        (["--property", "clock-tick", "--profile", "kvm-3.17", "--scenario", "z"], "--scenario"),
        (["--profile", "kvm-3.17"], "give --property"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys: Capture, argv: list[str], message: str) -> None:
    assert main(["explore", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("apiclab: ") and message in err
