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
from apiclab.guest.linux import LinuxConfig
from apiclab.guest.windows7 import Windows7Config
from apiclab.scenarios.win7_reboot import DEFAULT_TSC_HZ, DEVICE_VECTORS

BUILTIN = {"win7-reboot-0x5c": "win7-reboot-0x5c.toml"}
GUESTS = ("windows7", "linux")
CLOCK_SOURCES = ("hpet", "lapic-timer")
_VECTOR_FIELDS = ("clock_vector", "ipi_vector", "spurious_vector")
_TOP_KEYS = {"name", "description", "guest", "platform", "windows7", "linux", "traffic"}


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
    path = Path(spec)
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise UserError(f"--scenario {spec!r}: not a built-in scenario ({known}) nor a TOML file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{spec}: cannot read: {e}") from None
    return parse(text, spec)


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
    tsc_hz = _int(platform.get("tsc_hz", DEFAULT_TSC_HZ), f"{where}:platform.tsc_hz", 1_000_000)
    traffic = _table(doc, "traffic", where)
    _no_unknown(traffic, {"device_vectors"}, f"{where}:traffic")
    raw_devices = traffic.get("device_vectors", list(DEVICE_VECTORS))
    if not isinstance(raw_devices, list) or not raw_devices:
        raise UserError(f"{where}:traffic.device_vectors: expected a non-empty list of vectors")
    devices = tuple(
        _vector(v, f"{where}:traffic.device_vectors[{i}]") for i, v in enumerate(raw_devices)
    )
    return Scenario(
        name=name,
        description=str(doc.get("description", "")),
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
            else:
                value = _int(value, at, 0 if key == "clock_source_index" else 1)
        elif key == "clock_source" and value not in CLOCK_SOURCES:
            raise UserError(f"{at}: {value!r} is not one of {', '.join(CLOCK_SOURCES)}")
        changes[key] = value
    return replace(default, **changes)
