import json

import pytest

from apiclab.cli.main import main


def test_reproduce_json_has_one_row_per_profile(capsys):
    assert main(["reproduce", "--json", "--reboots", "40", "--seed", "7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "win7-reboot-0x5c" and doc["seed"] == 7
    rows = {(r["profile"], r["apicv"]): r for r in doc["results"]}
    assert set(rows) == {("kvm-3.17", True), ("kvm-3.18", True), ("kvm-3.17", False)}
    pre = rows[("kvm-3.17", True)]
    assert pre["bsods"] > 0 and pre["bugcheck"] == {"code": 92, "params": [267, 3, 0, 0]}
    assert any("rvi" in link["registers"] for link in pre["explanation"])
    assert rows[("kvm-3.18", True)]["bugcheck"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "--profile", "kvm-9.99"], "unknown profile 'kvm-9.99'"),
        (["reproduce", "--scenario", "nope"], "--scenario 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_profiles_lists_the_fix_commit(capsys):
    assert main(["profiles"]) == 0
    assert "4114c27d450b" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "message"), [("many", "'many' is not an integer"),
                                              ("0", "0 is not in 1..10000000")])
def test_usage_mistakes_are_one_line_too(capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--reboots", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reboots" in err and message in err
