"""The one error type of the admin tool: a message a person understands, and what to do next."""

from __future__ import annotations


class AdminError(Exception):
    """A failure to report as one line (``message``) plus an optional ``hint``; ``exit_code``
    is what the command exits with."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
