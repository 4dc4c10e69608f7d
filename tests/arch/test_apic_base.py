"""IA32_APIC_BASE mode transitions (SDM §10.12.5 Figure 10-27) and reserved bits (§10.4.4)."""

from __future__ import annotations

import pytest

from apiclab.arch.apic_base import EN, EXTD, ApicMode, check_write, page_base, reset_value
from apiclab.arch.lapic import GeneralProtection

BASE = 0xFEE00000
DISABLED, XAPIC, X2APIC, INVALID = BASE, BASE | EN, BASE | EN | EXTD, BASE | EXTD


@pytest.mark.parametrize("old, new", [
    (XAPIC, X2APIC), (X2APIC, DISABLED), (XAPIC, DISABLED), (DISABLED, XAPIC), (X2APIC, X2APIC),
])
def test_legal_transitions_pass(old: int, new: int) -> None:
    t = check_write(old, new)
    assert (t.old, t.new) == (ApicMode.of(old), ApicMode.of(new))


@pytest.mark.parametrize("old, new", [
    (X2APIC, XAPIC), (DISABLED, X2APIC), (XAPIC, INVALID), (X2APIC, INVALID), (DISABLED, INVALID),
])
def test_illegal_transitions_raise_gp(old: int, new: int) -> None:
    with pytest.raises(GeneralProtection):
        check_write(old, new)


@pytest.mark.parametrize("bit", [0, 7, 9, 40, 63])
def test_reserved_bits_raise_gp(bit: int) -> None:
    with pytest.raises(GeneralProtection, match="reserved"):
        check_write(XAPIC, XAPIC | 1 << bit)


def test_reset_value_is_the_enabled_xapic_at_the_default_base() -> None:
    assert reset_value() == 0xFEE00900 and reset_value(bsp=False) == 0xFEE00800
    assert check_write(reset_value(), reset_value()).disables is False
    assert check_write(XAPIC, DISABLED).disables and check_write(DISABLED, XAPIC).enables


def test_the_page_base_is_bits_maxphyaddr_to_12():
    # §10.4.4 Figure 10-5: the flags (BSP, EXTD, EN) are not part of the address
    assert page_base(reset_value()) == 0xFEE00000
    assert page_base(0xFEC01000 | EN | EXTD) == 0xFEC01000
    assert page_base((1 << 40) | 0xFEE00000, maxphyaddr=40) == 0xFEE00000
