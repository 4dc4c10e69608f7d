"""The 8254 model against the 82C54 datasheet (231244-006): mode 0 and mode 2 waveforms of OUT,
count loading on the next CLK, two-byte writes, the counter-latch command."""

from __future__ import annotations

from apiclab.engine.core import Engine
from apiclab.platform.pit import PIT_HZ, Pit, edge_time, edges_before


def pit_with_log() -> tuple[Engine, Pit, list[tuple[int, bool]]]:
    engine = Engine()
    log: list[tuple[int, bool]] = []
    pit = Pit(engine, lambda level: log.append((engine.now, level)))
    return engine, pit, log


def program_mode0(pit: Pit, count: int) -> None:
    pit.io_write(0x43, 0x30)  # counter 0, LSB then MSB, mode 0, binary
    pit.io_write(0x40, count & 0xFF)
    pit.io_write(0x40, count >> 8)


def test_clk_edges_are_at_1_193182_mhz() -> None:
    assert edges_before(1_000_000_000) == PIT_HZ
    assert edge_time(1) == 839 and edges_before(838) == 0 and edges_before(839) == 1


def test_mode0_out_goes_high_n_plus_1_clocks_after_the_count_is_written_and_stays_high() -> None:
    engine, pit, log = pit_with_log()
    program_mode0(pit, 100)
    engine.run(until=10_000_000)
    # written at t = 0: the load is CLK edge 1, then 100 decrements: OUT rises at edge 101
    assert log == [(edge_time(101), True)]
    assert pit.counters[0].out


def test_mode0_new_count_first_byte_sets_out_low_at_once() -> None:
    engine, pit, log = pit_with_log()
    program_mode0(pit, 10)
    engine.run(until=1_000_000)
    pit.io_write(0x40, 0x00)  # "Writing the first byte disables counting. OUT is set low"
    assert log[-1] == (1_000_000, False)
    pit.io_write(0x40, 0x10)  # 0x1000: high again 0x1001 CLK edges later
    engine.run(until=10_000_000)
    assert log[-1] == (edge_time(edges_before(1_000_000) + 1 + 0x1000), True)


def test_mode0_control_word_sets_out_low_and_holds_counting_until_a_count() -> None:
    engine, pit, log = pit_with_log()
    program_mode0(pit, 10)
    engine.run(until=100_000)
    pit.io_write(0x43, 0x30)  # "OUT ... remains high until a new ... Mode 0 Control Word"
    engine.run(until=100_000_000)
    assert log == [(edge_time(11), True), (100_000, False)]


def test_mode0_count_0_is_65536() -> None:
    engine, pit, log = pit_with_log()
    program_mode0(pit, 0)
    engine.run(until=60_000_000)
    assert log == [(edge_time(1 + 0x10000), True)]


def test_mode0_count_reads_n_then_decrements_per_clk_and_wraps() -> None:
    engine, pit, _ = pit_with_log()
    program_mode0(pit, 5)
    engine.run(until=edge_time(3))  # loaded at edge 1, two decrements
    assert pit.io_read(0x40) == 3 and pit.io_read(0x40) == 0
    engine.run(until=edge_time(7))  # 0 at edge 6, then 0xFFFF
    assert pit.count(0) == 0xFFFF


def test_counter_latch_holds_the_count_until_both_bytes_are_read() -> None:
    engine, pit, _ = pit_with_log()
    program_mode0(pit, 0x1234)
    engine.run(until=edge_time(1))
    pit.io_write(0x43, 0x00)  # latch counter 0
    engine.run(until=edge_time(100))
    assert pit.io_read(0x40) == 0x34 and pit.io_read(0x40) == 0x12
    assert pit.io_read(0x40) == (0x1234 - 99) & 0xFF  # latch released: the live count again


def test_mode2_out_goes_low_for_one_clk_every_n_clocks() -> None:
    engine, pit, log = pit_with_log()
    pit.io_write(0x43, 0x34)  # counter 0, LSB then MSB, mode 2
    assert log == [(0, True)]  # "OUT will initially be high"
    pit.io_write(0x40, 4)
    pit.io_write(0x40, 0)
    engine.run(until=edge_time(12))
    # loaded at edge 1: count 4, 3, 2, 1 (edge 4: OUT low), reload at edge 5 (OUT high), ...
    assert log[1:] == [(edge_time(4), False), (edge_time(5), True),
                       (edge_time(8), False), (edge_time(9), True),
                       (edge_time(12), False)]


def test_mode6_is_mode2_and_other_counters_do_not_drive_irq0() -> None:
    _, pit, log = pit_with_log()
    pit.io_write(0x43, 0x7C)  # counter 1, mode 6 (= 2)
    assert pit.counters[1].mode == 2 and pit.counters[1].out and log == []


def test_reset_lowers_out_and_forgets_the_programming() -> None:
    engine, pit, log = pit_with_log()
    program_mode0(pit, 1)
    engine.run(until=1_000_000)
    pit.reset()
    engine.run(until=10_000_000)
    assert log == [(edge_time(2), True), (1_000_000, False)]
    assert pit.counters[0].mode is None and pit.io_read(0x43) == 0xFF
