"""User errors: one base type, and a subclass per kind so that code branches on types.

The CLI prints any :class:`EnvgenError` as a single line on stderr and exits
with status 2.  Any other exception is a bug and keeps its traceback.  Code
that needs to tell errors apart catches a subclass; it never matches on the
message text.
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


class SpecError(EnvgenError):
    """The spec file is missing, malformed or asks for something unsupported."""


class LockError(EnvgenError):
    """Resolution failed, or a lock file is unreadable."""


class FormatError(EnvgenError):
    """A file envgen reads is not of the kind expected, or is malformed."""


class NewerFormatError(FormatError):
    """A file was written by a newer envgen (its format-version is higher than this one reads)."""


class StoreError(EnvgenError):
    """A store object is missing or corrupt, or the store directory is unusable."""


class HashMismatch(StoreError):
    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(f"{what}: sha256 mismatch: expected {expected}, got {actual}",
                         hint="the source changed or was tampered with; nothing was kept")
        self.expected = expected
        self.actual = actual


class FetchError(EnvgenError):
    """An artifact could not be downloaded."""


class NotABundle(FormatError):
    """The file is not an envgen bundle at all."""


class BundleRefused(EnvgenError):
    """A bundle is damaged or hostile; nothing was restored."""


class BuildError(EnvgenError):
    """A builder failed."""


class ToolMissing(EnvgenError):
    """An external tool envgen needs (bwrap, nix, podman, mksquashfs, …) is not installed."""


class ToolFailed(EnvgenError):
    """An external tool exited with an error."""


class RunError(EnvgenError):
    """A run cannot start (no such command in the env, a bad bind, …)."""
