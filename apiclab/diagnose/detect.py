"""Which evidence a file holds, when `--format` does not say: binary is a `kvm_lapic_state`
image, text is recognised by the headers each tool prints."""

from __future__ import annotations

from pathlib import Path

from apiclab.diagnose import lapic_image, qemu_text, trace_evidence, trace_text, windbg
from apiclab.diagnose.errors import EvidenceError
from apiclab.diagnose.evidence import Evidence
from apiclab.files import InputFileError, read_bytes

# A trace of a million kvm events is ~100 MB of text; four times that still fits in memory here.
MAX_EVIDENCE_BYTES = 400 << 20

FORMATS = ("auto", "lapic-image", "qemu-lapic", "windbg", "trace")


def _text(blob: bytes) -> str | None:
    if b"\0" in blob:
        return None
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return None


def guess(blob: bytes, name: str, text: str | None = None) -> str:
    text = _text(blob) if text is None else text
    if text is None:
        return "lapic-image"
    if qemu_text.looks_like(text):
        return "qemu-lapic"
    if windbg.looks_like(text):
        return "windbg"
    if trace_text.looks_like(text):
        return "trace"
    raise EvidenceError(f"{name}: unknown evidence format (not a kvm_lapic_state image, QEMU "
                        "`info lapic`, WinDbg `!apic` or a kvm trace); name it with --format")


def load(paths: list[Path], fmt: str = "auto", pids: set[int] | None = None) -> Evidence:
    blobs = []
    for path in paths:
        try:  # a regular file within bounds: a FIFO or /dev/zero is refused, never read
            blobs.append((str(path), read_bytes(path, max_bytes=MAX_EVIDENCE_BYTES)))
        except InputFileError as e:
            raise EvidenceError(str(e)) from None
    texts = [_text(b) for _, b in blobs]  # each file decoded once (a trace may be 100 MB)
    kinds = {guess(b, n, t) if fmt == "auto" else fmt for (n, b), t in zip(blobs, texts, strict=True)}
    if len(kinds) > 1:
        raise EvidenceError(f"the files hold different kinds of evidence ({', '.join(sorted(kinds))}): "
                            "give one kind at a time")
    kind = kinds.pop()
    if kind == "lapic-image":
        return lapic_image.parse_images(blobs)
    if len(blobs) != 1:
        raise EvidenceError(f"{kind} evidence is one file; got {len(blobs)}")
    name, text = blobs[0][0], texts[0]
    if text is None:
        raise EvidenceError(f"{name}: binary data where {kind} text was expected")
    if kind == "qemu-lapic":
        return qemu_text.parse(text, name)
    if kind == "windbg":
        return windbg.parse(text, name)
    return trace_evidence.parse(text, name, pids)
