import json

import pytest

from apiclab.cli.main import main


def test_reproduce_json_has_one_row_per_profile(capsys):
    assert main(["reproduce", "--json", "--reboots", "40", "--seed", "7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "win7-reboot-0x5c" and doc["seed"] == 7
    rows = {(r["profile"], r["apicv"]): r for r in doc["results"]}
    assert set(rows) == {("kvm-3.17", True), ("kvm-3.19", True), ("kvm-3.17", False)}
    pre = rows[("kvm-3.17", True)]
    assert pre["bsods"] > 0 and pre["bugcheck"] == {"code": 92, "params": [267, 3, 0, 0]}
    assert any("rvi" in link["registers"] for link in pre["explanation"])
    assert rows[("kvm-3.19", True)]["bugcheck"] is None


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


def test_pre_fix_profiles_up_to_3_18_fail_and_3_19_on_survive(capsys):
    names = ["kvm-3.17", "kvm-3.18", "kvm-3.19", "kvm-4.4", "kvm-4.11", "kvm-6.3", "kvm-6.7",
             "kvm-6.14"]
    argv = ["reproduce", "--json", "--reboots", "30", "--seed", "7"]
    for name in names:
        argv += ["--profile", name]
    assert main(argv) == 0
    rows = {r["profile"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows["kvm-3.17"]["bsods"] > 0 and rows["kvm-3.18"]["bsods"] > 0
    assert all(rows[n]["bsods"] == 0 for n in names[2:])
    restore = next(x for x in rows["kvm-3.18"]["explanation"] if x["step"] == "restore")
    assert "4114c27d450b" in restore["text"] and "first in v3.19" in restore["text"]


def test_an_old_profile_name_is_accepted_with_a_note(capsys):
    assert main(["reproduce", "--json", "--reboots", "2", "--profile", "kvm-4.10"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["results"][0]["profile"] == "kvm-4.11"
    assert "kvm-4.10 is an old name for kvm-4.11" in captured.err
