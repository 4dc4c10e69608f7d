"""The one error a diagnose parser raises: the input is not what it claims to be."""

from __future__ import annotations

from apiclab.errors import UserError


class EvidenceError(UserError):
    """Unreadable evidence (truncated or garbled text, an image of the wrong size, an unknown
    trace format, a socket that does not speak QMP): one line naming what and where."""
