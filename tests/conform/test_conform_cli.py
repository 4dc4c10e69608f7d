"""`apiclab conform` as a user meets it: error lines, the JSON document, the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apiclab.cli.main import main
from apiclab.conform.case import builtin_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["conform", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_unknown_backend_is_one_error_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--backends", "model,vmware")
    assert status == 2 and out == ""
    assert err == "apiclab: --backends: unknown backend 'vmware'; expected model, kvm, qemu, bochs\n"


def test_malformed_case_file_is_file_field_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (builtin_dir() / "tpr-no-pending.toml").read_text()
    (tmp_path / "broken.toml").write_text(text.replace('op = "sti"', 'op = "stop"'))
    status, _, err = run(capsys, "--backends", "model", "--cases", str(tmp_path))
    assert status == 2
    assert err.startswith(f"apiclab: {tmp_path / 'broken.toml'}:program.steps[1]: unknown op")
    assert err.count("\n") == 1


def test_json_has_backends_cases_results_and_differences(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--backends", "model,kvm", "--json",
                         "--only", "tpr-masks-pending", "--only", "ppr-from-tpr")
    assert status == 0
    doc = json.loads(out)
    assert doc["backends"]["model"]["available"] is True
    assert "version" in doc["backends"]["model"]
    assert set(doc["backends"]) == {"model", "kvm"}
    assert [c["case"] for c in doc["cases"]] == ["ppr-from-tpr", "tpr-masks-pending"]
    for c in doc["cases"]:
        assert c["sdm"] == "10.8.3.1"
        assert c["results"]["model"] == "agrees"
        assert c["results"]["kvm"] in ("agrees", "differs", "not-run")
        assert isinstance(c["differences"], list)


def test_html_report_is_written_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    status, out, _ = run(capsys, "--backends", "model", "--html", str(report),
                         "--only", "eoi-empty-isr")
    assert status == 0 and "eoi-empty-isr" in out
    page = report.read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "eoi-empty-isr" in page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left behind


def test_html_into_a_missing_directory_is_an_error_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run(capsys, "--backends", "model", "--html",
                         str(tmp_path / "no" / "r.html"), "--only", "eoi-empty-isr")
    assert status == 2 and err.startswith("apiclab: ") and err.count("\n") == 1


def test_random_needs_the_model_as_referee(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--backends", "qemu", "--random", "3")
    assert status == 2 and "the model is the referee" in err


def test_random_mode_json_counts_programs_per_backend(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    status, out, _ = run(capsys, "--backends", "model", "--random", "5", "--seed", "3", "--json",
                         "--candidates", str(tmp_path))
    assert status == 0
    doc = json.loads(out)
    assert doc["programs"] == 5 and doc["seed"] == 3
    assert doc["backends"]["model"]["programs"] == 5
    assert doc["disagreements"] == 0 and doc["kinds"] == []
    assert list(tmp_path.iterdir()) == []  # nothing to save without a disagreement
