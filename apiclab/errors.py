"""Errors that reach the user as one line and exit status 2 (docs/design.md, invariant 5)."""


class UserError(Exception):
    """A mistake in what the user gave (a flag, a file, a field): the message names what and where."""
