"""The one exception type for user errors.

The CLI prints an :class:`EnvgenError` as a single line on stderr and exits
with status 2.  Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EnvgenError(Exception):
    """A problem with the user's input or environment, not with envgen."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message
