"""The text of a spec that ``envgen init`` writes: deterministic, commented, in the shape of ``specs/abide.toml``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..clock import SnapshotDate


def toml_str(s: str) -> str:
    """A TOML string: literal ('…') when that needs no escape (requirements with markers read better), else basic."""
    if "'" not in s and all(ch >= " " and ch != "\x7f" for ch in s):
        return f"'{s}'" if '"' in s else f'"{s}"'
    return json.dumps(s, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes


def toml_list(items: list[str], indent: str = "    ") -> str:
    if not items:
        return "[]"
    if len(items) == 1 and len(items[0]) < 60:
        return f"[{toml_str(items[0])}]"
    return "[\n" + "".join(f"{indent}{toml_str(i)},\n" for i in items) + "]"


@dataclass
class SpecText:
    name: str
    snapshot_date: SnapshotDate
    python: str
    base: str
    platform: str = "linux-x86_64"
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    from_source: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # comment paragraphs
    notes: list[str] = field(default_factory=list)  # one line each
    not_carried: list[str] = field(default_factory=list)  # one line each

    def render(self) -> str:
        out: list[str] = []
        for para in self.header:
            out += [f"# {line}".rstrip() for line in para.splitlines()] + ["#"]
        if self.notes:
            out.append("# Notes:")
            out += [f"#   {line}" for line in self.notes] + ["#"]
        if self.not_carried:
            out.append("# Not carried over from the project's files (each with why):")
            out += [f"#   {line}" for line in self.not_carried] + ["#"]
        if out:
            out[-1] = ""
        out += [
            f"name = {toml_str(self.name)}",
            f"snapshot-date = {self.snapshot_date.iso}",
            f"python = {toml_str(self.python)}",
            f"platforms = {toml_list([self.platform])}",
            f"requirements = {toml_list(self.requirements)}",
        ]
        if self.constraints:
            out.append(f"constraints = {toml_list(self.constraints)}")
        if self.local:
            out.append(f"local = {toml_list(self.local)}")
        out += ["", "[os]", f"base = {toml_str(self.base)}", "packages = []",
                "# to take the Debian layer at the snapshot date too (snapshot.debian.org), not today's:",
                '# mirror = "https://snapshot.debian.org/archive/{archive}/{snapshot-date}"']
        if self.from_source:
            out += ["", "[build]", f"from-source = {toml_list(self.from_source)}"]
        out += ["", "[run]", 'command = ["python3"]', ""]
        return "\n".join(out)
