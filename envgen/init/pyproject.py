"""``pyproject.toml`` -> the project as a ``local`` entry, plus the optional-dependency groups asked for.

The project itself becomes ``local``: the lock builds it from its source and
resolves its ``[project] dependencies`` from there, so they are not repeated
in ``requirements`` (where they would drift from the pyproject).  A group of
``[project.optional-dependencies]`` named with ``--extra NAME`` adds its
requirements (a group that names the project's own extras, ``NAME[other]``,
brings those in too).  ``requires-python`` decides which OS base's Python
the spec may use.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from .draft import InitError, Origin
from .pipreqs import Reader


def read_pyproject(path: Path, reader: Reader, extras: list[str]) -> list[str]:
    """Read *path* into the reader's draft; the extras it used (those of *extras* it has)."""
    d = reader.draft
    where = reader.rel(path)
    d.sources.append(where)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InitError(f"{where}: not valid TOML: {exc}") from None
    project = data.get("project")
    if not isinstance(project, dict) or "name" not in project:
        hint = " (Poetry's [tool.poetry] is not read)" if "poetry" in data.get("tool", {}) else ""
        raise InitError(f"{where}: no [project] table with a name{hint}; envgen init reads PEP 621 metadata")
    name = canonicalize_name(str(project["name"]))
    d.names.append(name)
    origin = Origin(where)
    reader.local(path.parent, origin, reader.rel(path.parent))
    if rp := project.get("requires-python"):
        try:
            d.python_required.append((SpecifierSet(str(rp)), Origin(where, detail="requires-python")))
        except InvalidSpecifier:
            raise InitError(f"{where}: requires-python {rp!r} is not a PEP 440 specifier") from None
    if "dependencies" in project.get("dynamic", []):
        d.notes.append(f"{where}: [project] dependencies are dynamic; the lock takes them from the build backend")
    groups = project.get("optional-dependencies", {}) or {}
    wanted: list[str] = [canonicalize_name(e) for e in extras]
    known: dict[str, str] = {canonicalize_name(g): g for g in groups}
    for e in wanted:
        if e not in known:
            have = ", ".join(sorted(known)) or "none"
            raise InitError(f"--extra {e}: {where} has no such optional-dependency group (it has: {have})")
    done: list[str] = []

    def add(group: str) -> None:
        if group in done:
            return
        done.append(group)
        for i, text in enumerate(groups[known[group]]):
            o = Origin(where, detail=f"optional-dependencies.{known[group]}[{i}]")
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                raise InitError(f"{o}: {text!r} is not a PEP 508 requirement ({str(exc).splitlines()[0]})") from None
            if canonicalize_name(req.name) == name:  # the project's own extras: NAME[a,b]
                for sub in sorted(req.extras):
                    if canonicalize_name(sub) not in known:
                        raise InitError(f"{o}: {text!r} names the group {sub!r}, which {where} does not have")
                    add(canonicalize_name(sub))
                continue
            reader.requirement(text, o, path.parent)

    for e in wanted:
        add(e)
    if groups and not wanted:
        d.notes.append(f"{where}: optional-dependency groups not included (add them with --extra NAME): "
                       + ", ".join(sorted(known)))
    return done
