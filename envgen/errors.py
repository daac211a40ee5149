"""User errors: one base type, and a subclass per kind so that code branches on types.

The CLI prints any :class:`EnvgenError` as a single line on stderr and exits
with status 2.  Any other exception is a bug and keeps its traceback.  Code
that needs to tell errors apart catches a subclass; it never matches on the
message text.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any


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

    def details(self) -> dict[str, Any]:
        """Machine-readable fields of this kind of error (JSON values), beyond its message and hint."""
        return {}

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of ``--json`` output: ``type`` (the class name), ``message``, ``hint``, details."""
        return {**self.details(), "type": type(self).__name__, "message": self.message, "hint": self.hint}


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
    """Artifacts could not be downloaded from any of their URLs.

    ``artifacts`` names each one: ``{"name": FILE, "role": ROLE, "package": NAME,
    "sha256": …, "attempts": [{"url": …, "status": HTTP status or null, "reason": …}]}``
    (the last attempt per URL, in the order tried; ``role`` as in the snapshot
    manifest: ``deb`` and ``build-deb`` are Debian packages).
    """

    def __init__(self, message: str, hint: str | None = None, artifacts: list[dict[str, Any]] | None = None):
        super().__init__(message, hint)
        self.artifacts = list(artifacts or [])

    def details(self) -> dict[str, Any]:
        return {"artifacts": self.artifacts}


class NotABundle(FormatError):
    """The file is not an envgen bundle at all."""


class BundleRefused(EnvgenError):
    """A bundle is damaged or hostile; nothing was restored."""


class SignatureError(EnvgenError):
    """A signature (DSSE envelope) does not verify, is missing, or does not cover what it should."""


class NoSpace(EnvgenError):
    """A filesystem envgen writes to is full, or the user's disk quota is reached (what was being written
    is left in staging, never half in place)."""

    ERRNOS = (errno.ENOSPC, errno.EDQUOT)
    HINT = ("free space there: `envgen gc` removes the trees and units no root holds; or point --store "
            "(or the output) at a larger filesystem")

    @classmethod
    def of(cls, exc: OSError) -> NoSpace:
        """The one-line error for an ENOSPC or EDQUOT OSError."""
        where = f": {exc.filename}" if exc.filename else " (a filesystem envgen was writing to is full)"
        return cls(f"{exc.strerror or 'No space left on device'}{where}", hint=cls.HINT)


class BuildError(EnvgenError):
    """A builder failed."""


class ToolMissing(EnvgenError):
    """An external tool envgen needs (bwrap, nix, podman, mksquashfs, …) is not installed."""


class ToolFailed(EnvgenError):
    """An external tool exited with an error."""


class RunError(EnvgenError):
    """A run cannot start (no such command in the env, a bad bind, …)."""
