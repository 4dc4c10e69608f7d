"""Numbers on the command line: each flag's value is finite and within its range, or the flag is
refused in one line (exit 2) before anything runs.

`int_in(lo, hi)` and `float_in(lo, hi)` are argparse `type=` functions; the parser turns their
ArgumentTypeError into "apiclab COMMAND: argument --flag: MESSAGE". `parse_int_in` and
`parse_float_in` are the same checks for code that reads numbers itself.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from apiclab.errors import UserError

MAX_SEED = (1 << 64) - 1  # seeds are recorded and replayed; 64 bits are plenty
MAX_DIGITS = 40  # longer text is not a number any flag takes (and int() of it would be slow)


class NumberError(UserError):
    """A command-line number that is not a number, not finite, or out of its flag's range."""


def parse_int_in(text: str, low: int, high: int) -> int:
    """A decimal (or 0x-prefixed) integer in low..high, else NumberError (one line)."""
    stripped = text.strip()
    if len(stripped) > MAX_DIGITS:
        raise NumberError(f"{text[:MAX_DIGITS]!r}...: not an integer in {low}..{high}")
    try:
        value = int(stripped, 16) if stripped.lower().startswith("0x") else int(stripped, 10)
    except ValueError:
        raise NumberError(f"{text!r} is not an integer (expected {low}..{high})") from None
    if not low <= value <= high:
        raise NumberError(f"{value} is not in {low}..{high}")
    return value


def parse_float_in(text: str, low: float, high: float) -> float:
    """A finite number in low..high (nan, inf and 1e308 are refused), else NumberError."""
    if len(text.strip()) > MAX_DIGITS:
        raise NumberError(f"{text[:MAX_DIGITS]!r}...: not a number in {low:g}..{high:g}")
    try:
        value = float(text)
    except ValueError:
        raise NumberError(f"{text!r} is not a number (expected {low:g}..{high:g})") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise NumberError(f"{text.strip()} is not in {low:g}..{high:g}")
    return value


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_int_in(text, low, high)
        except NumberError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_float_in(text, low, high)
        except NumberError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "number"
    return parse
