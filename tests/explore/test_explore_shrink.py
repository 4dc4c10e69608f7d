"""Shrinking works on the choices: planted failures with noise shrink to their known minimal form."""

import itertools
from collections.abc import Callable

from apiclab.engine.choices import Choices
from apiclab.explore.families import FAMILIES
from apiclab.explore.properties import BUILTIN
from apiclab.explore.scenarios import reboot
from apiclab.explore.search import Executor
from apiclab.explore.shrink import Test, shrink, sort_key
from apiclab.hypervisor.profiles import PROFILES


def toy_test(fails: Callable[[list[int]], bool]) -> Test:
    """A run that draws a count and that many digits; `fails(digits)` plants the failure."""

    def test(seq: list[int]) -> list[int] | None:
        choices = Choices(replay=seq)
        digits = [choices.below(10) for _ in range(choices.below(5))]
        if not fails(digits):
            return None
        drawn = list(choices.drawn)
        while drawn and drawn[-1] == 0:
            drawn.pop()
        return drawn

    return test


def test_a_planted_seven_among_noise_shrinks_to_one_seven() -> None:
    test = toy_test(lambda digits: 7 in digits)
    assert test([4, 3, 9, 7, 2]) is not None
    result = shrink([4, 3, 9, 7, 2], test)
    assert result.choices == [1, 7]
    assert 0 < result.runs < 200


def test_a_planted_descent_shrinks_to_the_smallest_descent() -> None:
    test = toy_test(lambda digits: any(a > b for a, b in itertools.pairwise(digits)))
    result = shrink([4, 5, 9, 3, 8], test)
    assert result.choices == [2, 1]  # two digits, 1 then 0


def test_shrinking_never_returns_a_passing_or_larger_sequence() -> None:
    test = toy_test(lambda digits: sum(digits) >= 12)
    start = [4, 9, 9, 9, 9]
    result = shrink(start, test)
    assert test(result.choices) is not None
    assert sort_key(result.choices) <= sort_key(start)
    assert result.choices == [2, 3, 9]  # shortlex-minimal: two digits summing to 12


def test_a_noisy_reboot_failure_shrinks_to_one_stale_vector() -> None:
    executor = Executor(
        FAMILIES["reboot"], BUILTIN["clock-tick"], PROFILES["kvm-3.17"], apicv=True
    )
    # three arrivals: a device vector before the CLI, the IPI pending at reset, a device vector
    # after the reset; LAPIC-timer clock; early boot EOIs unexpected vectors
    noisy = [3, 2, 0, reboot.VECTORS.index(0xE1), 1, 5, 2, 1, 1]
    assert executor.replay(noisy)[1].violation is not None

    def still_fails(seq: list[int]) -> list[int] | None:
        run = executor.replay(seq)[1]
        return run.choices if run.violation is not None else None

    result = shrink(noisy, still_fails)
    assert result.choices == [1, reboot.VECTORS.index(0xD1), 1]
    run = executor.replay(result.choices)[1]
    stale = [e for e in run.events if e.kind == "deliver" and not e.irr_was_set]
    assert len(stale) == 1
    assert len([e for e in run.events if e.kind == "accept" and e.time < stale[0].time]) == 1


def test_shrinking_stops_at_its_deadline_with_a_failing_sequence() -> None:
    test = toy_test(lambda digits: 7 in digits)
    result = shrink([4, 3, 9, 7, 2], test, deadline=0.0)  # already past
    assert result.runs == 0 and result.choices == [4, 3, 9, 7, 2]
