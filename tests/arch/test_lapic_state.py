import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiclab.arch.lapic_state import LAPIC_STATE_SIZE, LapicState, LapicStateError
from apiclab.arch.registers import Reg


@given(st.binary(min_size=LAPIC_STATE_SIZE, max_size=LAPIC_STATE_SIZE))
def test_round_trip_keeps_every_register_slot(blob):
    state = LapicState.decode(blob)
    again = LapicState.decode(state.encode())
    assert again.regs == state.regs


def test_vector_banks_map_to_the_register_words():
    state = LapicState.zero()
    state.isr = 1 << 0xE1
    state.irr = (1 << 0xD1) | (1 << 0x20)
    image = state.encode()
    assert image[Reg.ISR0 + 0x70: Reg.ISR0 + 0x74] == (1 << 1).to_bytes(4, "little")
    assert image[Reg.IRR0 + 0x60: Reg.IRR0 + 0x64] == (1 << 0x11).to_bytes(4, "little")
    assert image[Reg.IRR0 + 0x10: Reg.IRR0 + 0x14] == (1).to_bytes(4, "little")
    assert LapicState.decode(image).irr == state.irr


def test_wrong_size_is_a_clear_error():
    with pytest.raises(LapicStateError, match="1024 bytes, got 10"):
        LapicState.decode(b"\0" * 10)
