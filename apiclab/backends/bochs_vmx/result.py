"""Decoding the probe's port-0xE9 lines, and the outcome of one case on either side.

Lines (written by `vmx_probe.S`):

    @VMXCAP basic HHHHHHHH_LLLLLLLL pin P proc P proc2 P exit X entry E
    @CASE id exit R n N v V1..V8 gis SVIRVI vtpr T vppr P isr <64 hex> irr <64 hex> exc E
    @FAIL what HHHHHHHH err EEEEEEEE
    @END

`isr`/`irr` are the virtual-APIC page's 256-bit VISR/VIRR (offsets 0x100/0x200), most
significant word first; `gis` is the VMCS guest interrupt status (SVI in the high byte, RVI in
the low byte, SDM 3C §24.4.2); `exc` is 0x100 + an exception vector the guest took, or 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apiclab.engine.events import VmExit
from apiclab.errors import ApiclabError, DecodeError

EXIT_VMCALL = 18  # basic exit reason of VMCALL (SDM 3C Appendix C)
EXIT_ENTRY_FAILED = 1 << 31


class ProbeError(ApiclabError, RuntimeError):
    """The probe did not run to its end, or printed something this decoder cannot read."""


class ProbeOutputError(ProbeError, DecodeError):
    """A probe line this decoder cannot read (a malformed or truncated field)."""


# What one case left behind is an event of the one observation format: the VM exit that ends it.
VmxOutcome = VmExit


@dataclass
class ProbeRun:
    """One boot of the probe: the controls it used, each case's outcome and raw line."""

    controls: dict[str, int] = field(default_factory=dict)
    outcomes: dict[int, VmxOutcome] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ended: bool = False


# A field is at most this many hex digits (VISR/VIRR: 256 bits); anything longer is not the
# probe's, and a bound keeps a damaged line from turning into a huge integer.
_MAX_HEX_DIGITS = 64
_HEX = re.compile(rf"[0-9A-Fa-f]{{1,{_MAX_HEX_DIGITS}}}")
MAX_LINE = 4096  # the longest probe line (@CASE) is under 300 characters


def _fields(line: str) -> dict[str, str]:
    words = line.split()
    if len(words) % 2:
        raise ProbeOutputError(f"malformed probe line: {_short(line)}")
    return dict(zip(words[0::2], words[1::2], strict=True))


def _short(line: str) -> str:
    return repr(line if len(line) <= 200 else line[:200] + "...")


def _hex_text(text: str, what: str, line: str) -> int:
    """A field of hex digits only: no sign, prefix, underscore or space, which `int(s, 16)`
    would accept but the probe never prints."""
    if not _HEX.fullmatch(text):
        raise ProbeOutputError(f"probe line without a hex {what!r}: {_short(line)}")
    return int(text, 16)


def _hex(fields: dict[str, str], key: str, line: str) -> int:
    return _hex_text(fields.get(key, ""), key, line)


def parse_case(line: str) -> tuple[int, VmxOutcome]:
    """One "@CASE" line -> (case id, outcome)."""
    f = _fields(line)
    case_id = _hex(f, "@CASE", line)
    count = _hex(f, "n", line)
    listed = f.get("v", "")
    if len(listed) != 16:
        raise ProbeOutputError(f"probe line with a malformed vector list: {_short(line)}")
    taken = tuple(_hex_text(listed[i:i + 2], "v", line) for i in range(0, 16, 2))
    gis = _hex(f, "gis", line)
    exc = _hex(f, "exc", line)
    outcome = VmExit(
        time=0,  # the probe reports no time: the case's exit is its one event
        delivered=taken[:min(count, 8)],
        rvi=gis & 0xFF,
        svi=(gis >> 8) & 0xFF,
        vppr=_hex(f, "vppr", line) & 0xFF,
        vtpr=_hex(f, "vtpr", line) & 0xFF,
        isr=vectors(_hex(f, "isr", line)),
        irr=vectors(_hex(f, "irr", line)),
        exit_reason=_hex(f, "exit", line),
        exception=(exc & 0xFF) if exc else None,
    )
    return case_id, outcome


def parse(text: str) -> ProbeRun:
    """All probe lines in Bochs' standard output (its own log lines are skipped).

    Raises ProbeOutputError (a ProbeError and a DecodeError) on a probe line it cannot read."""
    run = ProbeRun()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("@") and len(line) > MAX_LINE:
            raise ProbeOutputError(f"probe line of {len(line)} characters: {_short(line)}")
        if line.startswith("@VMXCAP"):
            f = _fields(line.removeprefix("@VMXCAP"))
            hi, _, lo = f.get("basic", "").partition("_")
            run.controls = {"vmx_basic": _hex_text(hi + lo, "basic", line)}
            for key in ("pin", "proc", "proc2", "exit", "entry"):
                run.controls[key] = _hex(f, key, line)
        elif line.startswith("@CASE"):
            case_id, outcome = parse_case(line)
            run.outcomes[case_id] = outcome
            run.lines[case_id] = line
        elif line.startswith("@FAIL"):
            run.failures.append(line)
        elif line.startswith("@END"):
            run.ended = True
    return run


def vectors(bits: int) -> list[int]:
    """The vectors set in a 256-bit register, lowest first."""
    return [v for v in range(256) if bits >> v & 1]

