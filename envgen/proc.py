"""The one way envgen runs an external tool: found on PATH, output captured, failure on one line."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

from .errors import ToolFailed, ToolMissing


def which(tool: str, hint: str | None = None, why: str | None = None) -> str:
    """The path of *tool*, or :class:`ToolMissing` naming it (and *why* it is needed)."""
    path = shutil.which(tool)
    if path is None:
        what = f"{tool} is not installed" + (f"; {why}" if why else "")
        raise ToolMissing(what, hint=hint or f"install {tool}")
    return path


def tail(text: str | bytes | None, n: int = 3) -> str:
    """The last *n* non-empty lines of a tool's output, joined onto one line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "no message"


def run(argv: Sequence[str], what: str, *, env: Mapping[str, str] | None = None, cwd=None,
        input: str | None = None, check: bool = True, timeout: float | None = None, text: bool = True,
        hint: str | None = None, lines: int = 3) -> subprocess.CompletedProcess:
    """Run *argv*, capturing stdout and stderr.

    With *check* (the default), a non-zero exit becomes :class:`ToolFailed`
    whose message is ``"<what> failed: <last lines of stderr>"``.
    """
    try:
        proc = subprocess.run(list(argv), env=dict(env) if env is not None else None, cwd=cwd, input=input,
                              capture_output=True, text=text, timeout=timeout)
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} is not installed ({what})", hint=hint) from None
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{what} timed out after {timeout:.0f} s", hint=hint) from None
    if check and proc.returncode != 0:
        raise ToolFailed(f"{what} failed: {tail(proc.stderr or proc.stdout, lines)}", hint=hint)
    return proc
