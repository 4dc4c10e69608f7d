"""Every parser of apiclab driven with generated input: each must parse or raise apiclab's own
error (`apiclab.errors.ApiclabError`), never anything else, and never hang.

Shared by the test suite (`test_fuzz.py`, a few hundred inputs per parser in `make test`) and the
runner (`run.py`, `make fuzz`, >= 10,000 per parser with a count of crashes and hangs). A target
is a Hypothesis strategy and a function of one drawn input; the function lets ApiclabError pass
silently and checks what a successful parse promises (a loaded program encodes, a decoded image
re-encodes to the same bytes, a user's Violation indexes the trace).

Inputs are generated three ways: from the format's own grammar with wrong values (out-of-range
integers, strings for numbers, unknown keys), by mutating valid documents, and as raw bytes.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import math
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from apiclab.arch.lapic_state import LAPIC_STATE_SIZE, LapicState
from apiclab.arch.registers import REG_BY_NAME
from apiclab.backends.bochs_vmx import result as probe
from apiclab.cli.main import build_parser
from apiclab.cli.numbers import parse_float_in, parse_int_in
from apiclab.conform.case import case_from_dict, load_case
from apiclab.engine import events as evt
from apiclab.engine.trace import Trace
from apiclab.errors import ApiclabError
from apiclab.explore.properties import Violation, get_property
from apiclab.guest.agent import log as agent_log
from apiclab.guest.program import Op, decode, encode, program_from_dict
from apiclab.scenarios import scenario_file

HANG_S = 5.0  # one input taking longer than this is a hang (the slowest parse takes ~10 ms)


class Hang(BaseException):
    """An input that did not finish within HANG_S (BaseException: no `except Exception` eats it)."""


def guarded(run: Callable[[Any], None], value: Any, limit_s: float = HANG_S) -> None:
    """Run one input under a wall-clock alarm; ApiclabError is a correct answer."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {limit_s:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        run(value)
    except ApiclabError as e:
        message = str(e)
        assert message and "\n" not in message, f"error message is not one line: {message!r}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- generic values and a small TOML writer ------------------------------------------------------

EDGE_INTS = [0, 1, -1, 0xF, 0x10, 0xFF, 0x100, 0xFFFF, 0x10000, 2**31, 2**32 - 1, 2**32,
             2**63 - 1, 2**64 - 1, 2**64, -(2**63)]
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-(2**66), 2**66), st.integers(0, 0x400))
NAMES = sorted(REG_BY_NAME) + [o.name.lower() for o in Op] + ["xapic-pm32", "x2apic-real",
                                                                "hpet", "lapic-timer", "0x80"]
scalars = st.one_of(ints, st.booleans(), st.text(max_size=10), st.sampled_from(NAMES),
                    st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(NAMES), inner, max_size=4),
    max_leaves=10,
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few lines deleted, duplicated, replaced or truncated."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "dup", "replace", "truncate", "value"]))
        if action == "delete":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "replace":
            lines[i] = draw(st.text(max_size=30))
        elif action == "truncate":
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {toml_value(draw(values))}"
    return "\n".join(lines) + "\n"


@cache
def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="apiclab-fuzz-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)  # leave no temp files behind
    return path


def scratch_file(name: str, data: bytes) -> Path:
    path = _scratch() / name
    path.write_bytes(data)
    return path


# --- scenario TOML ----------------------------------------------------------------------------------

BUILTIN_SCENARIO = (Path(scenario_file.__file__).parent / "win7-reboot-0x5c.toml").read_text()
WINDOWS7_KEYS = ["clock_vector", "ipi_vector", "spurious_vector", "clock_source",
                 "clock_source_index", "clock_period_ns", "wait_ms", "early_boot_eoi_unexpected"]
scenario_docs = st.fixed_dictionaries(
    {"name": st.text(max_size=8) | values},
    optional={
        "description": st.text(max_size=8) | values,
        "guest": st.sampled_from(["windows7", "linux", "dos"]) | values,
        "platform": st.fixed_dictionaries({}, optional={"tsc_hz": ints, "hz": ints}) | values,
        "windows7": st.dictionaries(st.sampled_from([*WINDOWS7_KEYS, "clock"]), ints | values,
                                    max_size=5) | values,
        "linux": st.dictionaries(st.sampled_from(["timer_vector", "tick_ns",
                                                  "clear_pending_intr", "x"]),
                                 ints | values, max_size=3) | values,
        "traffic": st.fixed_dictionaries({}, optional={"device_vectors": st.lists(ints, max_size=6)
                                                       | values}) | values,
        "extra": values,
    },
)
scenario_texts = st.one_of(scenario_docs.map(toml_document), mutated(BUILTIN_SCENARIO),
                           st.text(max_size=200))


def run_scenario_text(text: str) -> None:
    scenario = scenario_file.parse(text, "fuzz.toml")
    cfg = scenario.windows7
    assert 100_000 <= cfg.clock_period_ns <= 4_000_000_000 and 1 <= cfg.wait_ms <= 60_000
    assert 1_000_000 <= scenario.tsc_hz <= 10_000_000_000


def run_scenario_bytes(data: bytes) -> None:
    scenario_file.load(str(scratch_file("scenario.toml", data)))


# --- case TOML --------------------------------------------------------------------------------------

BUILTIN_CASE = (Path(case_from_dict.__code__.co_filename).parent / "cases"
                / "illegal-vector-error-interrupt.toml").read_text()
STEP_KEYS = ["reg", "value", "vector", "count", "ticks", "port", "addr", "code", "params", "tick"]
steps = st.fixed_dictionaries(
    {"op": st.sampled_from([o.name.lower() for o in Op] + ["jump"]) | values},
    optional={k: ints | st.sampled_from(NAMES) | values for k in STEP_KEYS},
)
handlers = st.fixed_dictionaries({}, optional={"eoi": st.booleans() | values,
                                               "log": st.booleans() | values, "x": values})
programs = st.fixed_dictionaries(
    {"steps": st.lists(steps | values, max_size=8) | values},
    optional={
        "mode": st.sampled_from(["xapic-pm32", "x2apic-real", "long"]) | values,
        "handlers": st.dictionaries(st.sampled_from(["0xd1", "0x10", "300", "-1", "x"]),
                                    handlers | values, max_size=3) | values,
        "default_handler": handlers | values,
        "entry": values,
    },
)
EXPECT_FIELDS = ["vector", "isr", "irr", "ppr", "reg", "port", "addr", "value", "count",
                 "outcome", "code", "params", "bogus"]
matchers = st.one_of(
    ints, st.lists(ints, max_size=3), values, st.sampled_from(["done", "timeout", "tpr", "0x80"]),
    st.fixed_dictionaries({"min": ints | values, "max": ints | values}),
    st.fixed_dictionaries({"mask": ints | values, "value": ints | values}),
)
expectations = st.fixed_dictionaries(
    {"kind": st.sampled_from(["interrupt", "read", "wait", "bugcheck", "fault", "end", "x"])},
    optional={k: matchers for k in EXPECT_FIELDS},
)
case_docs = st.fixed_dictionaries(
    {"name": st.text(max_size=6) | values, "sdm": st.just("10.8") | values,
     "description": st.just("d") | values, "program": programs | values},
    optional={"expect": st.lists(expectations | values, max_size=4) | values, "smd": values},
)


def run_case_doc(doc: dict[str, Any]) -> None:
    case = case_from_dict(doc, "fuzz.toml")
    encode(case.program)  # a loaded program always has a binary form
    for event in case.expected_events():
        event.describe()


def run_case_text(text: str) -> None:
    run_case_bytes(text.encode("utf-8"))


def run_case_bytes(data: bytes) -> None:
    case = load_case(scratch_file("case.toml", data))
    encode(case.program)


case_inputs = st.one_of(
    case_docs.map(lambda d: ("doc", d)),
    case_docs.map(toml_document).map(lambda t: ("text", t)),
    mutated(BUILTIN_CASE).map(lambda t: ("text", t)),
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
)


def run_case(item: tuple[str, Any]) -> None:
    kind, value = item
    {"doc": run_case_doc, "text": run_case_text, "bytes": run_case_bytes}[kind](value)


# --- program encode/decode --------------------------------------------------------------------------


def run_program_round_trip(doc: dict[str, Any]) -> None:
    program = program_from_dict(doc)
    blob = encode(program)
    back = decode(blob)
    assert back.steps[:len(program.steps)] == program.steps
    assert back.mode == program.mode and dict(back.handlers) == dict(program.handlers)


@st.composite
def program_images(draw: st.DrawFn) -> bytes:
    """Bytes near a program image: a valid encoding with bytes flipped, cut or appended."""
    kind = draw(st.sampled_from(["raw", "mutated"]))
    if kind == "raw":
        return draw(st.binary(max_size=700))
    try:
        blob = bytearray(encode(program_from_dict(draw(programs))))
    except ApiclabError:
        blob = bytearray(encode(program_from_dict({"steps": [{"op": "sti"}]})))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(blob) - 1))
        blob[i] = draw(st.integers(0, 255))
    return bytes(blob[:draw(st.integers(0, len(blob) + 16))])


def run_program_image(blob: bytes) -> None:
    program = decode(blob)
    encode(program)  # what decodes, encodes


program_inputs = st.one_of(programs.map(lambda d: ("dict", d)),
                           program_images().map(lambda b: ("image", b)))


def run_program(item: tuple[str, Any]) -> None:
    kind, value = item
    (run_program_round_trip if kind == "dict" else run_program_image)(value)


# --- kvm_lapic_state ----------------------------------------------------------------------------------

lapic_inputs = st.one_of(
    st.binary(min_size=LAPIC_STATE_SIZE, max_size=LAPIC_STATE_SIZE).map(lambda b: ("image", b)),
    st.binary(max_size=2 * LAPIC_STATE_SIZE).map(lambda b: ("image", b)),
    st.dictionaries(st.integers(-0x20, 0x420) | st.sampled_from(range(0, 0x400, 0x10)),
                    ints, max_size=12).map(lambda d: ("regs", d)),
)


def run_lapic_state(item: tuple[str, Any]) -> None:
    kind, value = item
    if kind == "image":
        state = LapicState.decode(value)
        assert LapicState.decode(state.encode()).regs == state.regs
        assert all(value[off:off + 4] == state.encode()[off:off + 4] for off in range(0, 0x400, 16))
    else:
        image = LapicState(dict(value)).encode()
        assert len(image) == LAPIC_STATE_SIZE


# --- agent log ------------------------------------------------------------------------------------------

HEXISH = "0123456789ABCDEFabcdef/DTxZ +-_\x00é"
agent_records = st.builds(
    lambda tag, tsc, body: f"@{tag}{tsc}{body}",
    st.sampled_from(list("SIRPMWBFEXQ")),
    st.text("0123456789ABCDEF", min_size=16, max_size=16) | st.text(HEXISH, max_size=18),
    st.text(HEXISH, max_size=30),
)
VALID_LOG = ("@S000000000000100001\n@I0000000000001100D1000000D0/D1/\n"
             "@R0000000000001200000000800000000000000020\n@W0000000000001300D100000001D\n"
             "@B00000000000014000000005C0000010B00000003\n@E0000000000001500\n")
agent_inputs = st.tuples(
    st.one_of(st.lists(agent_records | st.text(max_size=20), max_size=6).map("\n".join),
              mutated(VALID_LOG), st.binary(max_size=200)),
    st.integers(-2, 10**7) | st.sampled_from([1, 1_000_000, 3_000_000]),
)


def run_agent_log(item: tuple[str | bytes, int]) -> None:
    text, khz = item
    trace = agent_log.decode(text, khz)
    assert all(isinstance(e.time, int) for e in trace)


# --- Bochs VMX probe output ------------------------------------------------------------------------------

PROBE_LINES = [
    "@VMXCAP basic 00D81000_0000002B pin 00000017 proc 94206172 proc2 00000310 exit 00036DFB "
    "entry 000011FB",
    "@CASE 05 exit 00000012 n 01 v E100000000000000 gis E1D1 vtpr 00000000 vppr 000000E0 isr "
    + "00000002" + "0" * 56 + " irr " + "0" * 64 + " exc 0000",
    "@FAIL vmlaunch 00000000 err 00000007",
    "@END",
]
PROBE_TOKENS = ["@CASE", "@VMXCAP", "exit", "n", "v", "gis", "vtpr", "vppr", "isr", "irr", "exc",
                "basic", "pin", "proc", "0", "zz", "-1", "0x10", "1_0", "E1D1", "F" * 70, "_", ""]


@st.composite
def probe_texts(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        line = draw(st.sampled_from(PROBE_LINES))
        words = line.split(" ")
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(words) - 1))
            words[i] = draw(st.sampled_from(PROBE_TOKENS) | st.text(HEXISH, max_size=20))
        lines.append(" ".join(words))
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=60)))
    return "\n".join(lines)


def run_probe(text: str) -> None:
    run = probe.parse(text)
    for outcome in run.outcomes.values():
        assert 0 <= outcome.rvi <= 0xFF and 0 <= outcome.svi <= 0xFF


# --- property specs -----------------------------------------------------------------------------------------

EVENTS = Trace()
EVENTS.record(0, evt.WaitStart, text="wait", isr=[])
EVENTS.record(5, evt.Deliver, vector=0xD1, irr_was_set=True, isr=[0xD1])
RETURNS = ["None", "True", "False", "'broken'", "''", "'two\\nlines'", "3", "[1]", "1/0",
           "sys.exit(3)", "sys.exit()", "events[10**6]", "object()"]
module_prefix = st.sampled_from(["", "import sys\n", "import sys; sys.exit(1)\n",
                                 "raise ValueError('at import')\n", "syntax error (\n",
                                 "check = 3\n"])
violation_args = st.tuples(st.sampled_from([-1, 0, 1, 2, 10**6, "0", None, True, 1.5]),
                           st.sampled_from([0, -5, 2**70, "t", None, 0.5]),
                           st.sampled_from(["'text'", "''", "None", "3", "'a\\nb'"]))
check_bodies = st.one_of(
    st.sampled_from(RETURNS),
    violation_args.map(lambda a: f"Violation({a[0]!r}, {a[1]!r}, {a[2]})"),
)
spec_texts = st.one_of(
    st.sampled_from(["clock-tick", "no-stale-delivery", "restored-timer-fires", "", ":", ".py",
                     "x.py", "/dev/zero", "/dev/null:check", "a:b:c"]),
    st.text(max_size=20).map(lambda s: s.replace(":", "_")),  # no module to import
    st.text(max_size=12).map(lambda s: f"_apiclab_fuzz_absent_{s.replace(':', '_')}:check"),
)
property_inputs = st.one_of(
    spec_texts.map(lambda s: ("spec", s)),
    st.tuples(module_prefix, check_bodies, st.sampled_from(["check", "other", ""]))
    .map(lambda t: ("file", t)),
)


def run_property(item: tuple[str, Any]) -> None:
    kind, value = item
    with contextlib.redirect_stdout(io.StringIO()):
        if kind == "spec":
            get_property(value)
            return
        prefix, body, name = value
        source = (f"{prefix}import sys\nfrom apiclab.explore.properties import Violation\n"
                  f"def check(events):\n    return {body}\n")
        path = scratch_file("user_property.py", source.encode())
        prop = get_property(f"{path}:{name}" if name else str(path))
        answer = prop.check(EVENTS.events)
    if answer is not None:
        assert isinstance(answer, Violation) and 0 <= answer.index < len(EVENTS.events)
        assert isinstance(answer.time, int) and isinstance(answer.text, str)
        assert "\n" not in answer.text


# --- command-line numbers -----------------------------------------------------------------------------------

NUMERIC_FLAGS = [
    (["reproduce"], "--reboots"), (["reproduce"], "--seed"), (["vmx"], "--timeout"),
    (["conform"], "--random"), (["conform"], "--seed"), (["kvm", "reproduce"], "--wait-ms"),
]
number_texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "1e-400", "0x10", "-0", "1_000", " 5 ",
                     "9" * 50, "0" * 45 + "1", "+3", "1.5", "0b11"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
number_inputs = st.one_of(
    st.tuples(st.just("parse"), number_texts, st.integers(-100, 100), st.integers(-100, 10**6)),
    st.tuples(st.just("argv"), number_texts, st.sampled_from(range(len(NUMERIC_FLAGS))),
              st.just(0)),
)


@cache
def _parser() -> Any:
    return build_parser()


def run_number(item: tuple[str, str, int, int]) -> None:
    kind, text, a, b = item
    if kind == "parse":
        low, high = min(a, b), max(a, b)
        value = parse_int_in(text, low, high)
        assert low <= value <= high
        number = parse_float_in(text, low, high)
        assert math.isfinite(number) and low <= number <= high
        return
    prefix, flag = NUMERIC_FLAGS[a]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = _parser().parse_args([*prefix, f"{flag}={text}"])
    except SystemExit as e:
        assert e.code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
        return
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert isinstance(value, int | float) and math.isfinite(value)


# --- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], None]


TARGETS: dict[str, Target] = {
    "scenario-toml": Target(st.one_of(scenario_texts.map(lambda t: ("text", t)),
                                      st.binary(max_size=200).map(lambda b: ("bytes", b))),
                            lambda item: (run_scenario_text if item[0] == "text"
                                          else run_scenario_bytes)(item[1])),
    "case-toml": Target(case_inputs, run_case),
    "program-codec": Target(program_inputs, run_program),
    "kvm-lapic-state": Target(lapic_inputs, run_lapic_state),
    "agent-log": Target(agent_inputs, run_agent_log),
    "vmx-probe-output": Target(probe_texts(), run_probe),
    "property-spec": Target(property_inputs, run_property),
    "cli-numbers": Target(number_inputs, run_number),
}


# --- diagnose evidence (QEMU `info lapic`, WinDbg `!apic`, kvm traces, kvm_lapic_state images) -----

_DIAGNOSE_FIXTURES = Path(__file__).resolve().parent.parent / "diagnose" / "fixtures"
_EVIDENCE_SEEDS = sorted(p.read_bytes() for p in _DIAGNOSE_FIXTURES.iterdir()
                         if p.suffix in (".txt", ".trace", ".lapic"))


@st.composite
def _damaged_evidence(draw: st.DrawFn) -> bytes:
    """A real captured fixture (text or image) with a few lines or bytes changed."""
    blob = draw(st.sampled_from(_EVIDENCE_SEEDS))
    if blob[:1].isascii() and b"\0" not in blob[:64]:
        return mutated_text_bytes(draw, blob)
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def mutated_text_bytes(draw: st.DrawFn, blob: bytes) -> bytes:
    return draw(mutated(blob.decode("utf-8", "replace"))).encode()


evidence_inputs = st.one_of(_damaged_evidence(), st.binary(max_size=2048),
                            st.text(max_size=300).map(str.encode))


def run_evidence(blob: bytes) -> None:
    """`apiclab diagnose FILE` on the bytes: evidence that the verdicts can judge, or one line."""
    from apiclab.diagnose import detect
    from apiclab.diagnose.verdicts import judge

    judge(detect.load([scratch_file("evidence", blob)]))


TARGETS["diagnose-evidence"] = Target(evidence_inputs, run_evidence)
