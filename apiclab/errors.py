"""The errors apiclab raises on purpose, each a one-line message (docs/design.md, invariant 5).

Two kinds share one base, so a caller (or a fuzz test) can tell "apiclab refused this input" from
"apiclab has a bug":

- `UserError`: a mistake in what the user gave (a flag, a file, a field). The command line prints
  it as one line and exits 2.
- `DecodeError`: bytes or text that an implementation produced (a guest log, a probe's output, a
  register image, a program image) and that do not decode. The command line prints it as one line
  and exits 1: the input was the program's own, not the user's.
"""


class ApiclabError(Exception):
    """Base of every error apiclab raises on purpose; its message is one line."""

    def __str__(self) -> str:
        # Messages quote what the user gave (a path, a spec, a field), which may hold line
        # breaks; escaped, the message stays one line whatever it quotes.
        text = super().__str__()
        return text.replace("\r", "\\r").replace("\n", "\\n")


class UserError(ApiclabError):
    """A mistake in what the user gave (a flag, a file, a field): the message names what and where."""


class DecodeError(ApiclabError, ValueError):
    """Data that does not decode (truncated, unknown tag, out-of-range field): the message names
    the record and what was wrong. Also a ValueError, as the decoders raised before."""
