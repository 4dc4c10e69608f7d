"""The 8254 programmable interval timer (Intel 82C54 datasheet, 231244-006), as a PC wires it:
ports 0x40-0x42 the three counters, 0x43 the control word; CLK at 1.193182 MHz; GATE tied high;
counter 0's OUT is ISA IRQ0 (which the caller routes, e.g. to IOAPIC input 2).

Modelled: counters 0-2 in modes 0 (interrupt on terminal count) and 2 (rate generator), binary
counts, the LSB / MSB / LSB-then-MSB access modes and the counter-latch command. Other modes
count as mode 0 does, but their OUT stays low; BCD counting and the read-back command are not
modelled (reads return the binary count). The OUT level is what matters here: mode 0 holds it
high after terminal count, so it is a level-triggered interrupt source that every backend has.

Time is the engine's; CLK edges are at the instants ceil(k * 1e9 / PIT_HZ) ns, k = 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from apiclab.engine.core import Engine, Handle

PIT_HZ: Final = 1_193_182  # the PC's 14.31818 MHz crystal / 12
NS_PER_S: Final = 1_000_000_000
PORT_COUNTER0, PORT_CONTROL = 0x40, 0x43
PORTS = range(0x40, 0x44)

# control word fields (datasheet "Control Word Format")
RW_LATCH, RW_LSB, RW_MSB, RW_WORD = 0, 1, 2, 3


def edge_time(k: int) -> int:
    """The ns instant of CLK edge k (edge 0 at time 0)."""
    return -(-k * NS_PER_S // PIT_HZ)


def edges_before(t: int) -> int:
    """How many CLK edges k >= 1 happened at or before `t` ns."""
    return t * PIT_HZ // NS_PER_S


class Counter:
    """One counter's programming; the count itself is derived from time, never stored. (A plain
    class: three are made at every reset, and a dataclass's generated `__init__` stays Python
    in the compiled model, `apiclab.native`.)"""

    def __init__(self, *, mode: int | None = None, rw: int = RW_WORD, out: bool = False) -> None:
        self.mode = mode  # None: not programmed since reset (OUT undefined; modelled low)
        self.rw = rw
        self.initial = 0x10000  # N; a written 0 is 2^16 for binary counting
        self.load_edge: int | None = None  # the CLK edge that loads N ("the next CLK pulse")
        self.low_byte: int | None = None  # first byte of a two-byte count written, 2nd pending
        self.read_msb_next = False
        self.latched: list[int] = []  # bytes of a latched count, in read order
        self.out = out


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.mode, self.rw, self.initial, self.load_edge, self.low_byte,
                self.read_msb_next, self.latched, list(self.latched), self.out)

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        (self.mode, self.rw, self.initial, self.load_edge, self.low_byte, self.read_msb_next,
         latched, contents, self.out) = saved
        latched[:] = contents
        self.latched = latched

    def __repr__(self) -> str:
        return (f"Counter(mode={self.mode}, rw={self.rw}, initial={self.initial}, "
                f"load_edge={self.load_edge}, out={self.out})")


class Pit:
    def __init__(self, engine: Engine, out0: Callable[[bool], None]) -> None:
        self.engine = engine
        self.out0 = out0  # counter 0's OUT, called on every change of level
        self.counters = [Counter() for _ in range(3)]
        self._pending: list[Handle | None] = [None, None, None]

    # --- the port interface ---------------------------------------------------------------------


    def save_attrs(self) -> tuple[Any, ...]:
        """Every attribute, for a search's snapshot (`apiclab.explore.inplace`)."""
        return (self.engine, self.out0, self.counters, list(self.counters), self._pending,
                list(self._pending))

    def load_attrs(self, saved: tuple[Any, ...]) -> None:
        self.engine, self.out0, counters, kept, pending, handles = saved
        counters[:] = kept
        pending[:] = handles
        self.counters, self._pending = counters, pending

    def io_write(self, port: int, value: int) -> None:
        value &= 0xFF
        if port == PORT_CONTROL:
            self._control(value)
        elif port in PORTS:
            self._write_count(port - PORT_COUNTER0, value)

    def io_read(self, port: int) -> int:
        if port not in PORTS or port == PORT_CONTROL:
            return 0xFF  # the control word register cannot be read (datasheet, "Read Operations")
        c = self.counters[port - PORT_COUNTER0]
        if c.latched:
            return c.latched.pop(0)
        count = self.count(port - PORT_COUNTER0)
        return self._next_byte(c, count)

    def reset(self) -> None:
        for i in range(3):
            self._cancel(i)
            self._set_out(i, False)
            self.counters[i] = Counter()

    # --- state derived from time --------------------------------------------------------------

    def count(self, index: int) -> int:
        """The counting element now: N at the load edge, then one less per CLK edge."""
        c = self.counters[index]
        if c.load_edge is None:
            return c.initial & 0xFFFF
        done = edges_before(self.engine.now) - c.load_edge
        if done < 0:
            return c.initial & 0xFFFF
        if c.mode == 2:
            return c.initial - done % c.initial  # reloads N after reaching 1
        return (c.initial - done) & 0xFFFF  # mode 0 wraps to 0xFFFF and keeps counting

    # --- programming --------------------------------------------------------------------------

    def _control(self, value: int) -> None:
        index, rw, mode = value >> 6, (value >> 4) & 3, (value >> 1) & 7
        if index == 3:
            return  # read-back command: not modelled
        c = self.counters[index]
        if rw == RW_LATCH:
            # Counter latch command: the count is held until read (or the counter reprogrammed).
            if not c.latched:
                count = self.count(index)
                c.latched = self._bytes(c.rw, count)
            return
        self._cancel(index)
        # Modes 6 and 7 are 2 and 3 ("X" is don't care in the mode field).
        self.counters[index] = Counter(mode=mode - 4 if mode > 5 else mode, rw=rw, out=c.out)
        # "Mode 0: After the Control Word is written, OUT is initially low"; in the other modes
        # OUT is initially high (modes 1-5), modelled for mode 2.
        self._set_out(index, mode == 2 or mode == 6)

    def _write_count(self, index: int, value: int) -> None:
        c = self.counters[index]
        if c.mode is None:
            return
        if c.rw == RW_WORD and c.low_byte is None:
            c.low_byte = value
            if c.mode == 0:
                # "Writing the first byte disables counting. OUT is set low immediately"
                self._cancel(index)
                c.load_edge = None
                self._set_out(index, False)
            return
        if c.rw == RW_WORD:
            n = (c.low_byte or 0) | value << 8
            c.low_byte = None
        else:
            n = value << 8 if c.rw == RW_MSB else value
        self._load(index, n or 0x10000)

    def _load(self, index: int, n: int) -> None:
        c = self.counters[index]
        c.initial = n
        # "the Counter is loaded on the next CLK pulse" after the count is written
        c.load_edge = edges_before(self.engine.now) + 1
        self._cancel(index)
        if c.mode == 0:
            # Mode 0: a new count sets OUT low; it goes high when the count reaches 0, N edges
            # after the load edge ("OUT does not go high until N + 1 CLK pulses after the
            # initial count is written"), and stays high until reprogrammed.
            self._set_out(index, False)
            self._at_edge(index, c.load_edge + n, lambda: self._set_out(index, True))
        elif c.mode == 2:
            # Mode 2: OUT high; low for one CLK when the count reaches 1, then reload N.
            self._set_out(index, True)
            self._schedule_rate(index, c.load_edge + n - 1)

    def _schedule_rate(self, index: int, low_edge: int) -> None:
        n = self.counters[index].initial

        def low() -> None:
            self._set_out(index, False)
            self._at_edge(index, low_edge + 1, high)

        def high() -> None:
            self._set_out(index, True)
            self._schedule_rate(index, low_edge + n)

        self._at_edge(index, low_edge, low)

    # --- helpers ------------------------------------------------------------------------------

    def _at_edge(self, index: int, edge: int, callback: Callable[[], None]) -> None:
        self._pending[index] = self.engine.at(edge_time(edge), callback)

    def _cancel(self, index: int) -> None:
        handle = self._pending[index]
        if handle is not None:
            handle.cancel()
        self._pending[index] = None

    def _set_out(self, index: int, level: bool) -> None:
        c = self.counters[index]
        if c.out == level:
            return
        c.out = level
        if index == 0:
            self.out0(level)

    @staticmethod
    def _bytes(rw: int, count: int) -> list[int]:
        if rw == RW_LSB:
            return [count & 0xFF]
        if rw == RW_MSB:
            return [count >> 8 & 0xFF]
        return [count & 0xFF, count >> 8 & 0xFF]

    @staticmethod
    def _next_byte(c: Counter, count: int) -> int:
        if c.rw == RW_MSB:
            return count >> 8 & 0xFF
        if c.rw == RW_WORD:
            c.read_msb_next = not c.read_msb_next
            return count >> 8 & 0xFF if not c.read_msb_next else count & 0xFF
        return count & 0xFF
