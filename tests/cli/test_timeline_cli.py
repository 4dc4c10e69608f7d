"""`--timeline` and `--perfetto` on the commands: paths checked first, files written whole."""

import json

import pytest

from apiclab.cli.main import main
from apiclab.hypervisor.profiles import PRE_FIX


def test_reproduce_writes_both_files_and_leaves_no_temporary(tmp_path, capsys):
    html, trace = tmp_path / "r.html", tmp_path / "r.json"
    assert main(["reproduce", "--reboots", "20", "--profile", PRE_FIX,
                 "--timeline", str(html), "--perfetto", str(trace)]) == 0
    assert "0xe1" in html.read_text(encoding="utf-8").lower()
    assert json.loads(trace.read_text(encoding="utf-8"))["traceEvents"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]


def test_explore_draws_the_counterexample_beside_the_fixed_profile(tmp_path):
    html = tmp_path / "e.html"
    assert main(["explore", "--property", "clock-tick", "--profile", PRE_FIX,
                 "--timeline", str(html)]) == 1
    text = html.read_text(encoding="utf-8")
    assert "counterexample" in text and "the same choices" in text


@pytest.mark.parametrize("flag", ["--timeline", "--perfetto"])
def test_an_unwritable_path_is_refused_before_the_run(tmp_path, capsys, flag):
    target = tmp_path / "missing" / "out.file"
    assert main(["reproduce", "--reboots", "5", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert flag in err and "does not exist" in err and err.count("\n") == 1
    assert not target.parent.exists()


def test_a_directory_is_refused_as_an_output(tmp_path, capsys):
    assert main(["reproduce", "--reboots", "5", "--timeline", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
