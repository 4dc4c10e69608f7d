"""`apiclab vmx`: its output, and one line with exit status 2 when Bochs is missing."""

from __future__ import annotations

import json

import pytest

from apiclab.backends.base import BackendUnavailable
from apiclab.backends.bochs.backend import unavailable_reason
from apiclab.backends.bochs_vmx import runner
from apiclab.cli.main import main

# skips with the backend's own one-line reason: bochs missing, or no VGA ROM for it
BOCHS_MISSING = unavailable_reason()
needs_bochs = pytest.mark.skipif(BOCHS_MISSING is not None, reason=f"{BOCHS_MISSING}")


def test_missing_bochs_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def missing() -> str:
        raise BackendUnavailable("bochs is not installed (Debian packages bochs bochsbios)")

    monkeypatch.setattr(runner, "ready", missing)
    assert main(["vmx"]) == 2
    err = capsys.readouterr().err
    assert err == "apiclab: bochs is not installed (Debian packages bochs bochsbios)\n"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e308", "x"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["vmx", "--timeout", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("apiclab vmx: argument --timeout:") and "0.01..3600" in err


@needs_bochs
def test_json_reports_bochs_and_model_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vmx", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stale = next(c for c in doc["cases"] if c["name"] == "stale-rvi")
    assert stale["initial"] == {"rvi": 0xE1, "svi": 0, "vtpr": 0, "virr": [], "visr": [],
                                "eois": 0}
    for side in ("bochs", "model"):
        assert stale[side]["delivered"] == [0xE1]
        assert (stale[side]["rvi"], stale[side]["svi"], stale[side]["vppr"]) == (0, 0xE1, 0xE0)
        assert stale[side]["visr"] == [0xE1] and stale[side]["virr"] == []
    assert stale["evidence"].startswith("@CASE 01 ")
    assert doc["total"] == len(doc["cases"])


@needs_bochs
def test_text_shows_each_case_on_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vmx"]) == 0
    out = capsys.readouterr().out
    assert "1 stale-rvi: RVI=E1 SVI=00" in out
    assert "  bochs  delivered E1" in out and "  model  delivered E1" in out
