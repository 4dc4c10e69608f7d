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

from dataclasses import dataclass, field

EXIT_VMCALL = 18  # basic exit reason of VMCALL (SDM 3C Appendix C)
EXIT_ENTRY_FAILED = 1 << 31


class ProbeError(RuntimeError):
    """The probe did not run to its end, or printed something this decoder cannot read."""


@dataclass(frozen=True, slots=True)
class VmxOutcome:
    """What one case left behind: the vectors delivered, in order, and the state at VM exit."""

    delivered: tuple[int, ...]
    rvi: int
    svi: int
    vppr: int
    vtpr: int
    visr: int  # 256 bits
    virr: int  # 256 bits
    exit_reason: int = EXIT_VMCALL
    exception: int | None = None  # a guest exception vector, if one ended the case

    def fields(self) -> dict[str, object]:
        """The compared values, by name."""
        return {"delivered": self.delivered, "rvi": self.rvi, "svi": self.svi,
                "vppr": self.vppr, "visr": self.visr, "virr": self.virr,
                "exit_reason": self.exit_reason, "exception": self.exception}


@dataclass
class ProbeRun:
    """One boot of the probe: the controls it used, each case's outcome and raw line."""

    controls: dict[str, int] = field(default_factory=dict)
    outcomes: dict[int, VmxOutcome] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ended: bool = False


def _fields(line: str) -> dict[str, str]:
    words = line.split()
    if len(words) % 2:
        raise ProbeError(f"malformed probe line: {line!r}")
    return dict(zip(words[0::2], words[1::2], strict=True))


def _hex(fields: dict[str, str], key: str, line: str) -> int:
    try:
        return int(fields[key], 16)
    except (KeyError, ValueError):
        raise ProbeError(f"probe line without a hex {key!r}: {line!r}") from None


def parse_case(line: str) -> tuple[int, VmxOutcome]:
    """One "@CASE" line -> (case id, outcome)."""
    f = _fields(line)
    case_id = _hex(f, "@CASE", line)
    count = _hex(f, "n", line)
    listed = f.get("v", "")
    if len(listed) != 16:
        raise ProbeError(f"probe line with a malformed vector list: {line!r}")
    vectors = tuple(int(listed[i:i + 2], 16) for i in range(0, 16, 2))
    gis = _hex(f, "gis", line)
    exc = _hex(f, "exc", line)
    outcome = VmxOutcome(
        delivered=vectors[:min(count, 8)],
        rvi=gis & 0xFF,
        svi=gis >> 8,
        vppr=_hex(f, "vppr", line) & 0xFF,
        vtpr=_hex(f, "vtpr", line) & 0xFF,
        visr=_hex(f, "isr", line),
        virr=_hex(f, "irr", line),
        exit_reason=_hex(f, "exit", line),
        exception=(exc & 0xFF) if exc else None,
    )
    return case_id, outcome


def parse(text: str) -> ProbeRun:
    """All probe lines in Bochs' standard output (its own log lines are skipped)."""
    run = ProbeRun()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("@VMXCAP"):
            f = _fields(line.removeprefix("@VMXCAP"))
            hi, _, lo = f.get("basic", "").partition("_")
            try:
                run.controls = {"vmx_basic": int(hi + lo, 16)}
            except ValueError:
                raise ProbeError(f"malformed probe line: {line!r}") from None
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


def differences(observed: VmxOutcome, predicted: VmxOutcome) -> list[str]:
    """Names of the compared values that differ (empty when the two agree)."""
    mine, theirs = observed.fields(), predicted.fields()
    return [name for name in mine if mine[name] != theirs[name]]


def vectors(bits: int) -> list[int]:
    """The vectors set in a 256-bit register, lowest first."""
    return [v for v in range(256) if bits >> v & 1]
