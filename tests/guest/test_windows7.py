from hypothesis import given
from hypothesis import strategies as st

from apiclab.guest.windows7 import div1000, phase0_deadline


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_magic_number_division_equals_integer_division_by_1000(x):
    assert div1000(x) == x // 1000


def test_division_at_the_edges():
    for x in (0, 999, 1000, 1001, (1 << 64) - 1, 2_600_000_000 * 3000):
        assert div1000(x) == x // 1000


def test_phase0_deadline_is_three_seconds_of_tsc():
    assert phase0_deadline(tsc_now=5, tsc_hz=2_600_000_000, wait_ms=3000) == 5 + 7_800_000_000
