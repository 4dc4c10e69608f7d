"""Shared pieces of the diagnose tests: the fixture folder and a runner of the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apiclab.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures"


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def diagnose(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Run:
        code = main(["diagnose", *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
