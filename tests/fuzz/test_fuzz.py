"""Each parser, a few hundred generated inputs: it parses or raises apiclab's own error, in one
line, within the hang limit (the inputs and checks are in fuzz_targets.py; `make fuzz` runs
10,000 per parser). APICLAB_FUZZ_EXAMPLES overrides the count."""

from __future__ import annotations

import os
from typing import Any

import pytest
from fuzz_targets import TARGETS, guarded
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("APICLAB_FUZZ_EXAMPLES", "200"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_answers_every_input_with_a_result_or_its_own_error(name: str) -> None:
    target = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(target.strategy)
    def drive(value: Any) -> None:
        guarded(target.run, value)

    drive()
