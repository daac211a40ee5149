"""The one way envgen runs an external tool: found on PATH, output captured, failure on one line.

:func:`run` is for tools (subprocess).  :class:`Child` is for ``envgen run``'s
start-up path, on :func:`os.posix_spawnp`: ``import subprocess`` costs 6–10 ms
on a slow machine (it imports ``signal``, whose enum wrappers are built at
import, ``threading`` and ``selectors``), a quarter of what ``envgen run`` may
add over bwrap (issue 14).  That path needs to start a command (its stdout
ours, stderr's, a pipe or nothing), wait for it while passing Ctrl-C on, and
read what a short command printed; :class:`Child` does those and nothing else.
As ``subprocess`` does, a child gets SIGPIPE and SIGXFSZ back at their
defaults (Python ignores them, and ignored signals survive ``exec``), any other
signal as the caller has it (``nohup`` still works), and only the descriptors
it is given (Python's own are close-on-exec, PEP 446).
"""

from __future__ import annotations

import _signal  # the C module under `signal`: the same numbers, none of its import cost
import os

from .errors import ToolFailed, ToolMissing

TYPE_CHECKING = False  # not typing's: `envgen run` imports this module (mypy knows the name)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence


def which(tool: str, hint: str | None = None, why: str | None = None) -> str:
    """The path of *tool*, or :class:`ToolMissing` naming it (and *why* it is needed)."""
    import shutil

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
    import subprocess

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



DEVNULL = -1
PIPE = -2
SIGINT = _signal.SIGINT
# Back to their defaults in a child: what Python ignores.  (glibc's posix_spawn also leaves its own two
# signals below SIGRTMIN ignored; no sigset can name them, and glibc programs install their own handlers
# for them; subprocess, on posix_spawn where it can, does the same.)
_RESTORED = (_signal.SIGPIPE, _signal.SIGXFSZ)


class Child:
    """A started command: ``pid``, ``stdout`` (a readable fd with PIPE) and ``returncode`` once waited for.

    Signals go through a pidfd where the kernel has them (Linux ≥ 5.3), so a signal
    can never reach another process that reused the pid after this one was reaped.
    """

    def __init__(self, argv: list[str], stdout: int | None = None, stderr: int | None = None):
        actions: list[tuple] = []
        read_end = None
        for fd, how in ((1, stdout), (2, stderr)):
            if how == DEVNULL:
                actions.append((os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0))
            elif how == PIPE:
                read_end, write_end = os.pipe()
                actions.append((os.POSIX_SPAWN_DUP2, write_end, fd))
            elif how is not None:
                actions.append((os.POSIX_SPAWN_DUP2, how, fd))
        try:
            self.pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsigdef=_RESTORED)
        except BaseException:
            if read_end is not None:
                os.close(read_end)
            raise
        finally:
            if read_end is not None:
                os.close(write_end)
        self.stdout = read_end
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # an older kernel: plain kill(2)
            self._pidfd = None

    def wait(self) -> int:
        """Wait for the child; its exit status, or minus the signal that ended it (as subprocess)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the child unless it has been reaped already."""
        if self.returncode is not None:
            return
        try:
            if self._pidfd is not None:
                _signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, OSError):
            pass  # gone already

    def kill(self) -> None:
        self.send_signal(_signal.SIGKILL)

    def read(self) -> bytes:
        """All of the child's stdout (PIPE), then wait for it."""
        assert self.stdout is not None
        chunks = []
        try:
            while chunk := os.read(self.stdout, 65536):
                chunks.append(chunk)
        finally:
            os.close(self.stdout)
            self.stdout = None
        self.wait()
        return b"".join(chunks)
