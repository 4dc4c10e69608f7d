"""Scenario files: a reboot storm described in TOML (the built-in one ships as one of them).

Every field is checked; a mistake is one line naming the file, the field and what would be right
(docs/design.md, invariant 5).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from apiclab.errors import UserError
from apiclab.files import read_text
from apiclab.guest.linux import LinuxConfig
from apiclab.guest.windows7 import Windows7Config
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, DEVICE_VECTORS

BUILTIN = {"win7-reboot-0x5c": "win7-reboot-0x5c.toml"}
GUESTS = ("windows7", "linux")
CLOCK_SOURCES = ("hpet", "lapic-timer")
_VECTOR_FIELDS = ("clock_vector", "ipi_vector", "spurious_vector")
_TOP_KEYS = {"name", "description", "guest", "platform", "windows7", "linux", "traffic"}
# Bounds of the numeric fields. The model simulates every clock tick, so a period of 1 ns would
# be a billion events per virtual second; the bounds keep each reboot to at most ~10^5 events
# while covering every real configuration (Windows' HAL clock runs at 64-2000 Hz, Linux at
# HZ = 100-1000; a TSC runs at 1-10 GHz; Windows waits 3000 ms for its first tick).
BOUNDS: dict[str, tuple[int, int]] = {
    "tsc_hz": (1_000_000, 10_000_000_000),
    # at most 4 s: as a LAPIC timer period it must fit the 32-bit initial count at KVM's 1 GHz bus
    "clock_period_ns": (100_000, 4_000_000_000),
    "tick_ns": (100_000, 1_000_000_000),
    "wait_ms": (1, 60_000),
    "clock_source_index": (0, 0xFFFFFFFF),
}
MAX_DEVICE_VECTORS = 256


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    guest: str = "windows7"
    tsc_hz: int = DEFAULT_TSC_HZ
    windows7: Windows7Config = field(default_factory=Windows7Config)
    linux: LinuxConfig = field(default_factory=LinuxConfig)
    device_vectors: tuple[int, ...] = DEVICE_VECTORS


def load(spec: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    if spec in BUILTIN:
        text = resources.files("apiclab.scenarios").joinpath(BUILTIN[spec]).read_text()
        return parse(text, spec)
    known = ", ".join(BUILTIN)
    path = Path(spec)
    if not (path.exists() or path.is_symlink()):
        if "/" in spec or spec.endswith(".toml"):
            raise UserError(f"--scenario {spec}: no such file")
        raise UserError(f"--scenario {spec!r}: not a built-in scenario ({known}) nor a file")
    return parse(read_text(path), spec)


def parse(text: str, where: str) -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML: {e}") from None
    _no_unknown(doc, _TOP_KEYS, where)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}:name: missing or not a non-empty string")
    guest = doc.get("guest", "windows7")
    if guest not in GUESTS:
        raise UserError(f"{where}:guest: {guest!r} is not one of {', '.join(GUESTS)}")
    platform = _table(doc, "platform", where)
    _no_unknown(platform, {"tsc_hz"}, f"{where}:platform")
    tsc_hz = _bounded(platform.get("tsc_hz", DEFAULT_TSC_HZ), "tsc_hz", f"{where}:platform.tsc_hz")
    traffic = _table(doc, "traffic", where)
    _no_unknown(traffic, {"device_vectors"}, f"{where}:traffic")
    raw_devices = traffic.get("device_vectors", list(DEVICE_VECTORS))
    if not isinstance(raw_devices, list) or not 1 <= len(raw_devices) <= MAX_DEVICE_VECTORS:
        raise UserError(f"{where}:traffic.device_vectors: expected a list of 1..{MAX_DEVICE_VECTORS} "
                        "vectors")
    devices = tuple(
        _vector(v, f"{where}:traffic.device_vectors[{i}]") for i, v in enumerate(raw_devices)
    )
    return Scenario(
        name=name,
        description=_text(doc.get("description", ""), f"{where}:description"),
        guest=guest,
        tsc_hz=tsc_hz,
        windows7=_dataclass_from(Windows7Config(), _table(doc, "windows7", where), f"{where}:windows7"),
        linux=_dataclass_from(LinuxConfig(), _table(doc, "linux", where), f"{where}:linux"),
        device_vectors=devices,
    )


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}:{key}: expected a table")
    return value


def _no_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UserError(f"{where}: unknown field {key!r}; expected one of {', '.join(sorted(allowed))}")


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _bounded(value: Any, key: str, where: str) -> int:
    low, high = BOUNDS[key]
    number = _int(value, where, low)
    if number > high:
        raise UserError(f"{where}: {number} is above {high}")
    return number


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: expected a string, got {value!r}")
    return value


def _vector(value: Any, where: str) -> int:
    vector = _int(value, where)
    if not 16 <= vector <= 255:
        raise UserError(f"{where}: vector {vector:#x} is not 0x10-0xff")
    return vector


def _dataclass_from(default: Any, table: dict[str, Any], where: str) -> Any:
    """A copy of the frozen config `default` with the table's fields, each type-checked."""
    known = {f.name: getattr(default, f.name) for f in fields(default)}
    _no_unknown(table, set(known), where)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        current = known[key]
        at = f"{where}.{key}"
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise UserError(f"{at}: expected true or false, got {value!r}")
        elif isinstance(current, int):
            if key in _VECTOR_FIELDS or key == "timer_vector":
                value = _vector(value, at)
            elif key in BOUNDS:
                value = _bounded(value, key, at)
            else:
                value = _int(value, at, 1)
        elif key == "clock_source" and value not in CLOCK_SOURCES:
            raise UserError(f"{at}: {value!r} is not one of {', '.join(CLOCK_SOURCES)}")
        changes[key] = value
    return replace(default, **changes)
