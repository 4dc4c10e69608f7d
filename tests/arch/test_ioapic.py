from apiclab.arch.ioapic import IOREGSEL, IOWIN, RTE_LEVEL, RTE_MASKED, Ioapic


def test_entries_are_masked_after_reset():
    io = Ioapic()
    io.write(IOREGSEL, 0x10)
    assert io.read(IOWIN) & RTE_MASKED
    assert io.set_irq(0, True) == ()


def test_edge_entry_sends_on_rising_edge_only():
    io = Ioapic()
    io.set_redirection(2, 0xD1)
    (msg,) = io.set_irq(2, True)
    assert msg.vector == 0xD1 and not msg.level
    assert io.set_irq(2, True) == ()
    io.set_irq(2, False)
    assert len(io.set_irq(2, True)) == 1


def test_level_entry_sets_remote_irr_until_eoi_and_resends_if_still_asserted():
    io = Ioapic()
    io.set_redirection(9, RTE_LEVEL | 0x39)
    (msg,) = io.set_irq(9, True)
    assert msg.level and io.remote_irr(9)
    assert io.set_irq(9, True) == ()  # remote IRR blocks a second message
    (again,) = io.eoi(0x39)  # line still high: sent again
    assert again.vector == 0x39 and io.remote_irr(9)
    io.set_irq(9, False)
    assert io.eoi(0x39) == () and not io.remote_irr(9)


def test_remote_irr_is_read_only_through_the_window():
    io = Ioapic()
    io.set_redirection(3, RTE_LEVEL | 0x40)
    io.set_irq(3, True)
    io.write(IOREGSEL, 0x16)
    io.write(IOWIN, RTE_LEVEL | 0x41)
    assert io.remote_irr(3) and io.read(IOWIN) & 0xFF == 0x41
