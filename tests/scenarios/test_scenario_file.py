"""Scenario files: the built-in one is a TOML file like the users' own, checked field by field."""

import json

import pytest

from apiclab.cli.main import main
from apiclab.errors import UserError
from apiclab.guest.windows7 import Windows7Config
from apiclab.scenarios import scenario_file
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, DEVICE_VECTORS


def test_builtin_scenario_file_holds_the_model_defaults():
    scenario = scenario_file.load("win7-reboot-0x5c")
    assert scenario.windows7 == Windows7Config()
    assert scenario.tsc_hz == DEFAULT_TSC_HZ and scenario.device_vectors == DEVICE_VECTORS


def test_user_scenario_changes_the_bugcheck_parameters(tmp_path, capsys):
    path = tmp_path / "bz1387054.toml"
    path.write_text(
        'name = "bz1387054"\n'
        "[windows7]\nclock_source_index = 1\n"  # the Red Hat bugzilla's second parameter
    )
    assert main(["reproduce", "--scenario", str(path), "--reboots", "30", "--seed", "7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "bz1387054"
    pre = doc["results"][0]
    assert pre["bugcheck"] == {"code": 0x5C, "params": [0x10B, 1, 0, 0]}


def test_flags_override_the_scenario(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nguest = "linux"\n[windows7]\nclock_source = "hpet"\n')
    scenario = scenario_file.load(str(path))
    assert scenario.guest == "linux"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n[windows7]\nclock_vektor = 1\n', "unknown field 'clock_vektor'"),
        ('name = "x"\n[windows7]\nclock_vector = 0x0e\n', "windows7.clock_vector: vector 0xe"),
        ('name = "x"\n[windows7]\nclock_source = "pit"\n', "clock_source: 'pit' is not one of"),
        ('name = "x"\n[windows7]\nearly_boot_eoi_unexpected = 1\n', "expected true or false"),
        ('name = "x"\nguest = "beos"\n', "guest: 'beos' is not one of"),
        ('name = "x"\n[traffic]\ndevice_vectors = []\n', "device_vectors: expected a list of 1..256"),
        ('name = "x"\n[platform]\ntsc_hz = 5\n', "platform.tsc_hz: expected an integer >= 1000000"),
        ("name = \n", "not valid TOML"),
        ('description = "no name"\n', ":name: missing"),
    ],
)
def test_bad_scenario_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        scenario_file.load(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unknown_scenario_name_or_missing_file(capsys):
    assert main(["reproduce", "--scenario", "no-such-thing"]) == 2
    err = capsys.readouterr().err
    assert "not a built-in scenario" in err and err.count("\n") == 1
