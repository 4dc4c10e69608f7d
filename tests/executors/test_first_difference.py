"""The one comparison: `first_difference` and `differences` on their own."""

from __future__ import annotations

from apiclab.executors.compare import Difference, differences, first_difference


def test_equal_sequences_have_no_difference() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([], []) is None
    assert list(differences("abc", "abc")) == []


def test_the_first_differing_position_with_both_sides() -> None:
    assert first_difference([1, 2, 3, 4], [1, 2, 9, 8]) == Difference(2, 3, 9)


def test_a_shorter_observation_ends_where_the_expected_goes_on() -> None:
    assert first_difference([1, 2, 3], [1, 2]) == Difference(2, 3, None)


def test_a_longer_observation_has_an_extra_item() -> None:
    assert first_difference([1, 2], [1, 2, 3]) == Difference(2, None, 3)


def test_items_that_are_none_are_compared_not_taken_for_the_end() -> None:
    assert first_difference([None, 1], [None, 2]) == Difference(1, 1, 2)
    assert first_difference([None], [None]) is None


def test_a_matcher_decides_per_position() -> None:
    within = lambda low_high, value: low_high[0] <= value <= low_high[1]  # noqa: E731
    assert first_difference([(0, 9), (5, 6)], [3, 6], within) is None
    assert first_difference([(0, 9), (5, 6)], [3, 7], within) == Difference(1, (5, 6), 7)


def test_differences_lists_every_position_in_order() -> None:
    found = list(differences([1, 2, 3], [1, 5, 3, 4]))
    assert found == [Difference(1, 2, 5), Difference(3, None, 4)]
    assert first_difference([1, 2, 3], [1, 5, 3, 4]) == found[0]


def test_rows_compare_as_mappings_regardless_of_key_order() -> None:
    a = [{"kind": "read", "reg": 0x80, "value": 0}]
    b = [{"value": 0, "kind": "read", "reg": 0x80}]
    assert first_difference(a, b) is None
