"""Every diagnose parser on random and damaged input: it returns evidence or raises the one
EvidenceError (one line for the user), never any other exception. Plus a round trip: a random
LAPIC state printed in QEMU's `info lapic` form reads back as the same state."""

from __future__ import annotations

import struct

from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parsers import TRACE, WINDBG

from apiclab.arch.vectors import vectors_of
from apiclab.diagnose import detect, lapic_image, qemu_text, trace_evidence, windbg
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.verdicts import judge

QEMU = (FIXTURES / "qemu-tcg-stuck.txt").read_text()
RUNS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damaged(draw: st.DrawFn, text: str) -> str:
    """The text with a few lines dropped, cut, duplicated or overwritten."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        match draw(st.sampled_from(["drop", "cut", "dup", "junk"])):
            case "drop":
                del lines[i]
            case "cut":
                lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
            case "dup":
                lines.insert(i, lines[i])
            case _:
                lines[i] = draw(st.text(max_size=40)) + "\n"
    return "".join(lines)


def _ok_or_evidence_error(parse: object, text: str) -> None:
    try:
        ev = parse(text, "fuzz")  # type: ignore[operator]
    except EvidenceError as e:
        assert "\n" not in str(e)
        return
    judge(ev)  # whatever a parser accepts, the verdicts can judge


@RUNS
@given(damaged(QEMU))
def test_qemu_text_parser_survives_damage(text: str) -> None:
    _ok_or_evidence_error(qemu_text.parse, text)


@RUNS
@given(damaged(WINDBG))
def test_windbg_parser_survives_damage(text: str) -> None:
    _ok_or_evidence_error(windbg.parse, text)


@RUNS
@given(damaged(TRACE))
def test_trace_replay_survives_damage(text: str) -> None:
    _ok_or_evidence_error(trace_evidence.parse, text)


@RUNS
@given(st.text(max_size=300))
def test_every_text_parser_survives_noise(text: str) -> None:
    for parse in (qemu_text.parse, windbg.parse, trace_evidence.parse):
        _ok_or_evidence_error(parse, text)


@RUNS
@given(st.binary(max_size=2048))
def test_detection_and_images_survive_any_bytes(blob: bytes) -> None:
    try:
        kind = detect.guess(blob, "fuzz")
        if kind == "lapic-image":
            lapic_image.parse_images([("fuzz", blob)])
    except EvidenceError as e:
        assert "\n" not in str(e)


@RUNS
@given(st.binary(min_size=1024, max_size=1024))
def test_any_1k_image_decodes_and_is_judged(blob: bytes) -> None:
    ev = lapic_image.parse_images([("fuzz", blob)])
    [c] = ev.cpus
    assert c.irr == int.from_bytes(b"".join(blob[0x200 + 16 * i:0x204 + 16 * i]
                                            for i in range(8)), "little")
    judge(ev)


vector_sets = st.sets(st.integers(16, 255), max_size=6)


@RUNS
@given(vector_sets, vector_sets, st.integers(0, 255), st.booleans(), st.booleans())
def test_qemu_form_round_trip(isr: set[int], irr: set[int], tpr: int, if_flag: bool,
                              shadow: bool) -> None:
    def dump(name: str, vs: set[int]) -> str:
        return f"{name}\t " + ("".join(f"{v} " for v in sorted(vs)) or "(none)")

    text = QEMU
    for name, vs in (("ISR", isr), ("IRR", irr)):
        old = next(ln for ln in text.splitlines() if ln.startswith(name + "\t"))
        text = text.replace(old, dump(name, vs))
    text = text.replace("TPR 0x00", f"TPR 0x{tpr:02x}")
    eflags = 0x2 | (0x200 if if_flag else 0)
    text = text.replace("EFL=00000287", f"EFL={eflags:08x}").replace("II=0", f"II={int(shadow)}")
    [c] = qemu_text.parse(text, "rt").cpus
    assert (set(vectors_of(c.isr)), set(vectors_of(c.irr)), c.tpr) == (isr, irr, tpr)
    assert (c.if_flag, c.shadow) == (if_flag, shadow)


def test_struct_layout_of_the_fuzzed_image_matches_the_codec() -> None:
    blob = bytearray(1024)
    struct.pack_into("<I", blob, 0x200 + 0x10 * 6, 1 << (0xD1 % 32))
    assert vectors_of(lapic_image.parse_images([("x", bytes(blob))]).cpus[0].irr) == [0xD1]
