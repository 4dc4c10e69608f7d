"""Decode what the agent writes to port 0xE9 into `Trace` events (the shared observation format).

Each record is one text line, "@" tag, the TSC as 16 hex digits, then fixed-width hex fields
(agent.S). Lines that do not start with "@" are ignored, so a backend's own output (Bochs prints
to the same stream) may surround them. The event keys are those of `apiclab.guest.program`:

    @S tsc mode(2)                                  start (time origin, not an event)
    @I tsc vector(2) ppr(8) /isr.. /irr.. /tmr..    interrupt {vector, isr, irr, tmr, ppr}, the
                                                    ISR, IRR and TMR as lists of 2-digit vectors
                                                    (an older agent logs no TMR)
    @R tsc reg(8) value(16)                         read {reg, value}
    @P tsc port(4) value(2)                         read {port, value} (IN)
    @M tsc addr(8) value(8)                         read {addr, value} (MMIO_READ)
    @Q tsc msr(8) value(16)                         read {msr, value} (RDMSR)
    @G tsc vector(2)                                fault {vector}: an RDMSR/WRMSR step's #GP,
                                                    after which the program goes on
    @W tsc vector(2) count(8) D|T                   wait {vector, count, outcome}
    @B tsc code(8) p0(8) p1(8)                      bugcheck {code, params[4]}
    @F tsc vector(2)                                fault {vector}
    @E tsc                                          end {}
    @L tsc                                          agent-error: a LINT1_PULSE step got no
                                                    answer from the host (not guest-visible)
    @X tsc                                          the program slot held no valid program

Times are nanoseconds since the start record, from the TSC at `tsc_khz` (KVM_GET_TSC_KHZ).

A run on several CPUs in relay mode (agent.S `relay`, for Bochs, which has a device on port 0xE9
only) carries every CPU's records on port 0xE9: CPU 0's as they happen, then each other CPU k's,
relayed from RAM at the end after a line "=" k(2 hex) ("!" added when its buffer overflowed), then
"=00". `split_relayed` cuts such a log back into what each CPU's own port would have carried.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apiclab.engine import events as ev
from apiclab.engine.trace import Trace
from apiclab.errors import DecodeError


class AgentLogError(DecodeError):
    """A record the agent cannot have written (truncated or unknown)."""


LINT1_UNANSWERED = ("lint1_pulse: the host did not answer the agent's marker in time, so no "
                    "LINT1 pulse is known to have landed at the step")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _show(line: str) -> str:
    return repr(line if len(line) <= 120 else line[:120] + "...")


def _hex(digits: str, line: str) -> int:
    """A fixed-width hex field: digits only (`int(s, 16)` would also take a sign, "0x", "_" or
    spaces, which the agent never writes)."""
    if not digits or not _HEX_DIGITS.issuperset(digits):
        raise AgentLogError(f"agent record {_show(line)}: {digits!r} is not hex digits")
    return int(digits, 16)


def _vectors(digits: str, line: str) -> list[int]:
    """"D1E1" -> [0xD1, 0xE1]: the set bits of ISR or IRR, as the agent lists them."""
    if len(digits) % 2:
        raise AgentLogError(f"interrupt record {_show(line)}: odd vector list {digits!r}")
    return sorted(_hex(digits[i:i + 2], line) for i in range(0, len(digits), 2))


def records(text: str) -> list[str]:
    """The agent's record lines in `text` (other output dropped).

    An NMI is not held off by the CLI around the agent's REP OUTSB, so the NMI handler's whole
    record can land inside another one: "@R…@I…\n" then the rest of the "@R" record on the next
    line. The interrupted record is put back together and listed first (its event came first).
    An INIT also lands anywhere, but its CPU starts over: the record it cut is never finished,
    and the line after the one it was cut in starts a new record ("@" instead of the rest). Then
    the cut record is dropped and the record found after it kept.
    """
    out: list[str] = []
    prefix, held = "", ""  # the interrupted record's start, and the record found inside it
    for line in text.splitlines():
        if prefix and line.startswith("@"):  # never resumed: its CPU was reset (INIT)
            out.append(held)
            prefix, held = "", ""
        if prefix:
            line, prefix = prefix + line, ""
        if not line.startswith("@"):
            continue
        nested = line.find("@", 1)
        if nested > 0 and not held:
            prefix, held = line[:nested], line[nested + 1:]
            continue
        out.append(line[1:])
        if held:
            out.append(held)
            held = ""
    if len(prefix) > 1:
        out.append(prefix[1:])
    if held:
        out.append(held)
    return out


def decode(text: str | bytes, tsc_khz: int) -> Trace:
    """The trace of one agent run from its port-0xE9 output."""
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    return decode_records(records(text), tsc_khz)


def decode_records(lines: Iterable[str], tsc_khz: int) -> Trace:
    return _decode_tagged(((None, line) for line in lines), tsc_khz)


def decode_cpus(outputs: Sequence[str | bytes], tsc_khz: int) -> Trace:
    """The trace of a run on several CPUs from each CPU's own log (`outputs[k]`: what CPU k
    wrote): every event carries its `cpu`, and the records of all CPUs are merged in TSC order
    (one VM's vCPUs share one TSC), stable for equal stamps. The time origin is the first
    record of all."""
    tagged: list[tuple[int, int, str]] = []
    for cpu, text in enumerate(outputs):
        if isinstance(text, bytes):
            text = text.decode("ascii", errors="replace")
        for line in records(text):
            if len(line) < 17:
                raise AgentLogError(f"truncated agent record {_show(line)}")
            tagged.append((_hex(line[1:17], line), cpu, line))
    tagged.sort(key=lambda r: r[0])
    return _decode_tagged(((cpu, line) for _, cpu, line in tagged), tsc_khz)


def split_relayed(text: str | bytes, cpus: int) -> list[str]:
    """Each CPU's log (index k: CPU k) from the port-0xE9 log of a run in relay mode: a line "="
    k(2 hex) starts CPU k's part, everything else before the first one is CPU 0's. A CPU whose
    records overflowed the agent's buffer, or a part for a CPU the run does not have, raises
    AgentLogError (records would be missing without a trace)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    parts: list[list[str]] = [[] for _ in range(cpus)]
    current = 0
    for line in text.split("\n"):
        if line.startswith("=") and len(line) in (3, 4):
            cpu = _hex(line[1:3], line)
            if not cpu < cpus:
                raise AgentLogError(f"relayed log {_show(line)}: CPU {cpu}, the run has {cpus}")
            if line[3:] == "!":
                raise AgentLogError(f"relayed log: CPU {cpu}'s records overflowed the agent's "
                                    "buffer, some are lost")
            if line[3:]:
                raise AgentLogError(f"relayed log: {_show(line)} is not a CPU's marker")
            current = cpu
            continue
        parts[current].append(line)
    return ["\n".join(lines) for lines in parts]


def _decode_tagged(lines: Iterable[tuple[int | None, str]], tsc_khz: int) -> Trace:
    if isinstance(tsc_khz, bool) or not isinstance(tsc_khz, int) or tsc_khz <= 0:
        raise AgentLogError(f"TSC frequency must be positive, got {tsc_khz} kHz")
    trace = Trace()
    origin: int | None = None
    for cpu, line in lines:
        if len(line) < 17:
            raise AgentLogError(f"truncated agent record {_show(line)}")
        tag, body = line[0], line[17:]
        tsc = _hex(line[1:17], line)
        if origin is None:
            origin = tsc
        time = (tsc - origin) * 1_000_000 // tsc_khz
        _decode_one(Tagged(trace, cpu), time, tag, body, line)
    return trace


class Tagged:
    """A Trace whose `record` adds {"cpu": k} to each event (none for a one-CPU run, as the
    model's events carry none there), but for the run's `end`, which is the whole program's (the
    model's carries no CPU either; `conform --random` compared them field by field)."""

    def __init__(self, trace: Trace, cpu: int | None) -> None:
        self.trace, self.cpu = trace, cpu

    def record(self, time: int, kind: type[ev.Event], **fields: Any) -> None:
        if self.cpu is not None and kind is not ev.End:
            fields["cpu"] = self.cpu
        self.trace.record(time, kind, **fields)


def _decode_one(trace: Tagged, time: int, tag: str, body: str, line: str) -> None:
    expected = {"S": 2, "I": None, "R": 24, "P": 6, "M": 16, "Q": 24, "W": 11, "B": 24, "F": 2,
                "G": 2, "E": 0, "X": 0, "L": 0}
    if tag not in expected:
        raise AgentLogError(f"unknown agent record {_show(line)}")
    if tag == "I" and (len(body) < 12 or body.count("/") not in (2, 3) or body[10] != "/"):
        raise AgentLogError(f"interrupt record {_show(line)} is not vector, PPR, /ISR, /IRR"
                            "[, /TMR]")
    if tag != "I" and len(body) != expected[tag]:
        raise AgentLogError(f"agent record {_show(line)} has {len(body)} field characters, "
                            f"expected {expected[tag]}")
    match tag:
        case "I":
            _, isr, irr, *tmr = body.split("/")
            extra = {"tmr": _vectors(tmr[0], line)} if tmr else {}
            trace.record(time, ev.Interrupt, vector=_hex(body[0:2], line),
                         isr=_vectors(isr, line), irr=_vectors(irr, line),
                         ppr=_hex(body[2:10], line), **extra)
        case "R":
            trace.record(time, ev.Read, reg=_hex(body[0:8], line), value=_hex(body[8:24], line))
        case "P":
            trace.record(time, ev.Read, port=_hex(body[0:4], line), value=_hex(body[4:6], line))
        case "M":
            trace.record(time, ev.Read, addr=_hex(body[0:8], line), value=_hex(body[8:16], line))
        case "Q":
            trace.record(time, ev.Read, msr=_hex(body[0:8], line), value=_hex(body[8:24], line))
        case "W":
            outcome = {"D": "done", "T": "timeout"}.get(body[10])
            if outcome is None:
                raise AgentLogError(f"wait record {_show(line)}: outcome must be D or T")
            trace.record(time, ev.WaitDone, vector=_hex(body[0:2], line),
                         count=_hex(body[2:10], line), outcome=outcome)
        case "B":
            trace.record(time, ev.Bugcheck, code=_hex(body[0:8], line),
                         params=[_hex(body[8:16], line), _hex(body[16:24], line), 0, 0])
        case "F" | "G":
            trace.record(time, ev.Fault, vector=_hex(body[0:2], line))
        case "S":
            _hex(body, line)
        case "E":
            trace.record(time, ev.End)
        case "L":
            trace.record(time, ev.AgentError, reason=LINT1_UNANSWERED)
        case _:  # "X"
            trace.record(time, ev.AgentError, reason="no valid program in the ROM's program slot")
