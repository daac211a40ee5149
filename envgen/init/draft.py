"""What the readers of ``envgen init`` gather from a project's files, before it becomes a spec.

Each reader (requirements files, pyproject.toml, environment.yml, Dockerfile)
adds to one :class:`Draft`: requirements with where each came from, local
projects, constraints, what it could not carry over and why, and what the
files say about the Python version.  Nothing a file asks for is dropped
without an :class:`Omitted` entry that says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from ..errors import EnvgenError


class InitError(EnvgenError):
    """``envgen init`` cannot turn a project's files into a spec."""


@dataclass(frozen=True)
class Origin:
    """Where something was read: a file (relative to the spec's directory) and a line, when known."""

    file: str
    line: int | None = None
    detail: str = ""  # e.g. "pip:" for environment.yml's pip section

    def __str__(self) -> str:
        out = self.file + (f":{self.line}" if self.line else "")
        return out + (f" ({self.detail})" if self.detail else "")


@dataclass
class Entry:
    """One requirement as read: PEP 508 (a PyPI name) or, with ``url``, a git commit."""

    req: Requirement
    origin: Origin
    hashes: tuple[str, ...] = ()  # sha256 hex digests from --hash
    pinned_by: str | None = None  # "--pin NAME==V" when that option replaced what the file said

    @property
    def text(self) -> str:
        return str(self.req)


@dataclass
class Omitted:
    """Something a file asks for that the spec does not carry, and why."""

    what: str
    origin: Origin
    reason: str

    def line(self) -> str:
        return f"{self.origin}: {self.what}: {self.reason}"


@dataclass
class Draft:
    requirements: list[Entry] = field(default_factory=list)
    constraints: list[Entry] = field(default_factory=list)
    local: list[tuple[Path, Origin]] = field(default_factory=list)  # absolute project directories
    from_source: list[str] = field(default_factory=list)
    omitted: list[Omitted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said on stderr and written as spec comments
    python_wanted: list[tuple[str, Origin]] = field(default_factory=list)  # "3.10": what an image or env had
    python_required: list[tuple[SpecifierSet, Origin]] = field(default_factory=list)  # requires-python
    names: list[str] = field(default_factory=list)  # candidates for the spec's name, best first
    sources: list[str] = field(default_factory=list)  # the files read, relative to the spec's directory

    def omit(self, what: str, origin: Origin, reason: str) -> None:
        self.omitted.append(Omitted(what, origin, reason))
