"""``envgen init``: a spec from a project's existing files.

Readers (one module each) gather a :class:`~envgen.init.draft.Draft` from
requirements files, a pyproject.toml, a conda environment.yml or a
Dockerfile's ``pip install`` commands; :func:`plan` then decides what the
spec says:

1. ``--pin NAME==V`` replaces what the files say about NAME (the way to pin a
   VCS branch); a VCS URL left on a branch, a tag or no ref is refused;
2. the Python and the OS base: ``--python``/``--base`` when given (checked
   against each other and any ``requires-python``), else the first base whose
   Python satisfies every ``requires-python``, preferring the Python an
   image or a conda env had (:func:`choose_target`);
3. markers are evaluated on that target: a requirement whose marker is false
   there is left out, with a note; the others keep their markers;
4. a project named twice is merged into one requirement (their specifiers
   intersected);
5. the snapshot date: today's 00:00:00Z, ``--date``, or ``--date auto``
   (:mod:`envgen.init.pypi`).

The spec text (:mod:`envgen.init.render`) depends only on the files and the
options, so re-running gives the same bytes; it is validated as any spec is
before anything is written.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..clock import SnapshotDate, parse_date_option, today
from ..distros import DISTROS, PLATFORMS
from ..spec import NAME_PATTERN, Spec, parse_spec
from .draft import Draft, Entry, InitError, Omitted
from .pipreqs import Reader, floating_vcs, repo_of
from .render import SpecText

PLATFORM = "linux-x86_64"
# The files envgen init looks for in a directory, in this order, and what reads each.
CANDIDATES = ("requirements.txt", "requirements.in", "pyproject.toml", "environment.yml", "environment.yaml",
              "Dockerfile", "Containerfile")
KINDS = ("requirements", "pyproject", "conda", "dockerfile")
DEFAULT_SPEC_NAME = "envgen.toml"


@dataclass
class Options:
    paths: list[str] = field(default_factory=lambda: ["."])
    output: str | None = None
    date: str | None = None  # None: today; "auto"; a date or RFC 3339 UTC time
    python: str | None = None
    base: str | None = None
    name: str | None = None
    extras: list[str] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    force: bool = False


@dataclass
class Plan:
    path: Path  # where the spec goes
    text: str
    spec: Spec  # the validated spec (its path is ``path``)
    draft: Draft
    requirements: list[Entry]
    constraints: list[Entry]
    date_basis: list[dict] = field(default_factory=list)  # --date auto: the uploads it looked at

    @property
    def notes(self) -> list[str]:
        return self.draft.notes

    @property
    def omitted(self) -> list[Omitted]:
        return self.draft.omitted


def kind_of(path: Path) -> str | None:
    name = path.name
    low = name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if low in ("environment.yml", "environment.yaml") or low.endswith((".yml", ".yaml")):
        return "conda"
    if low in ("dockerfile", "containerfile") or low.endswith(".dockerfile") or low.startswith("dockerfile."):
        return "dockerfile"
    if low.endswith((".txt", ".in")) or low.startswith("requirements"):
        return "requirements"
    return None


def inputs(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, kind) of each input: a file by its name, a directory by the one known file it holds."""
    out: list[tuple[Path, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = [path / c for c in CANDIDATES if (path / c).is_file()]
            if not found:
                raise InitError(f"{p}: none of {', '.join(CANDIDATES)} here; name the file to start from")
            if len(found) > 1:
                names = ", ".join(f.name for f in found)
                raise InitError(f"{p}: holds {names}; name the one(s) to start from, e.g. "
                                f"`envgen init {found[0]}` (several files are read together)")
            path = found[0]
        elif not path.is_file():
            raise InitError(f"{p}: no such file or directory")
        kind = kind_of(path)
        if kind is None:
            raise InitError(f"{p}: cannot tell what this file is; envgen init reads requirements files "
                            "(*.txt, *.in), pyproject.toml, a conda environment.yml and Dockerfiles")
        out.append((path, kind))
    return out


def plan(opts: Options, progress=None) -> Plan:
    say = progress or (lambda msg: None)
    files = inputs(opts.paths)
    out = Path(opts.output) if opts.output else files[0][0].parent / DEFAULT_SPEC_NAME
    if out.exists() and not opts.force:
        raise InitError(f"{out} exists; envgen init does not overwrite a spec (--force does)")
    if out.suffix != ".toml":
        raise InitError(f"-o {out}: a spec is a .toml file")
    draft = Draft()
    reader = Reader(draft, out.parent)
    used_extras: list[str] = []
    for path, kind in files:
        say(f"reading {path}")
        if kind == "requirements":
            reader.read_file(path)
        elif kind == "pyproject":
            from .pyproject import read_pyproject

            used_extras += read_pyproject(path, reader, opts.extras)
        elif kind == "conda":
            from .conda import read_environment

            read_environment(path, reader)
        else:
            from .dockerfile import read_dockerfile

            read_dockerfile(path, reader)
    if opts.extras and not any(k == "pyproject" for _, k in files):
        raise InitError("--extra names optional-dependency groups of a pyproject.toml; none is read here")

    _apply_pins(draft, opts.pins)
    for e in draft.requirements:
        if why := floating_vcs(e):
            assert e.req.url is not None
            raise InitError(f"{e.origin}: {e.req.url!r} {why}; pin it: --pin {e.req.name}==VERSION "
                            f"(a PyPI release) or a full 40-hex commit (git+{repo_of(e.req.url)}@<commit>)")
    python, base = choose_target(opts.python, opts.base, draft)
    requirements = _merge(_applying(draft.requirements, python, draft), draft, "requirement")
    constraints = _merge(_applying(draft.constraints, python, draft), draft, "constraint")
    if not requirements and not draft.local:
        raise InitError(f"{', '.join(draft.sources)}: no requirement to carry over, so there is nothing to install")
    name = _name(opts.name, draft, files[0][0])
    date, basis = _date(opts.date, requirements + constraints, python, base, say)

    local = sorted({reader.rel(p) for p, _ in draft.local})
    header = [f"Written by `envgen init` from {', '.join(draft.sources)}."]
    if used_extras:
        header[0] += f" Optional dependencies: {', '.join(used_extras)}."
    if opts.date == "auto" and basis:
        newest = basis[0]
        header.append(f"snapshot-date: the first midnight (UTC) after the newest exact pin's upload "
                      f"({newest['file']}, {newest['upload_time']}); `envgen update` moves it.")
    else:
        header.append("snapshot-date: nothing published later is chosen; `envgen update` moves it.")
    if any(e.hashes for e in requirements):
        header.append("Hashed pins (--hash) became exact pins: the lock re-derives each artifact's sha256\n"
                      "from the index at the snapshot date, and envgen init compares it with the hashes given.")
    text = SpecText(
        name=name, snapshot_date=date, python=python, base=base, platform=PLATFORM,
        requirements=[e.text for e in requirements], constraints=[e.text for e in constraints], local=local,
        from_source=sorted({canonicalize_name(n) for n in draft.from_source}),
        header=header, notes=draft.notes, not_carried=[o.line() for o in draft.omitted],
    ).render()
    spec = parse_spec(text.encode(), str(out), out.parent)
    return Plan(out, text, spec, draft, requirements, constraints, basis)


def _apply_pins(draft: Draft, pins: list[str]) -> None:
    for pin in pins:
        try:
            req = Requirement(pin)
        except Exception:
            req = None
        spec = list(req.specifier) if req else []
        if req is None or req.url or req.marker or len(spec) != 1 or spec[0].operator != "==" or "*" in spec[0].version:
            raise InitError(f"--pin {pin}: expected NAME==VERSION, e.g. --pin pykale==0.1.2")
        key = canonicalize_name(req.name)
        hits = [e for e in draft.requirements if canonicalize_name(e.req.name) == key]
        if not hits:
            raise InitError(f"--pin {pin}: no requirement names {req.name}")
        for e in hits:
            extras = f"[{','.join(sorted(e.req.extras))}]" if e.req.extras else ""
            marker = f"; {e.req.marker}" if e.req.marker else ""
            e.req = Requirement(f"{e.req.name}{extras}=={spec[0].version}{marker}")
            e.pinned_by = f"--pin {pin}"
            e.hashes = ()
            draft.notes.append(f"{e.origin}: pinned by --pin {pin}")


def marker_environment(python: str, platform: str = PLATFORM) -> dict[str, str]:
    """The PEP 508 environment of the spec's target (CPython on Linux; patch level .0, as uv resolves it)."""
    plat = PLATFORMS[platform]
    return {"implementation_name": "cpython", "implementation_version": f"{python}.0", "os_name": "posix",
            "platform_machine": plat.machine, "platform_python_implementation": "CPython", "platform_release": "",
            "platform_system": "Linux", "platform_version": "", "python_full_version": f"{python}.0",
            "python_version": python, "sys_platform": "linux", "extra": ""}


def _applying(entries: list[Entry], python: str, draft: Draft) -> list[Entry]:
    env = marker_environment(python)
    out = []
    for e in entries:
        if e.req.marker is not None and not e.req.marker.evaluate(env):
            draft.omit(e.text, e.origin, f"its marker is false on the target (CPython {python}, Linux "
                                         f"{PLATFORMS[PLATFORM].machine})")
            continue
        out.append(e)
    return out


def _merge(entries: list[Entry], draft: Draft, what: str) -> list[Entry]:
    """One entry per project, in first-seen order; a project named twice gets both specifiers."""
    by: dict[str, Entry] = {}
    for e in entries:
        key = canonicalize_name(e.req.name)
        a = by.get(key)
        if a is None:
            by[key] = e
            continue
        if str(a.req) == str(e.req):
            a.hashes = tuple(sorted(set(a.hashes) | set(e.hashes)))
            continue
        pins = {s.version for r in (a.req, e.req) for s in r.specifier if s.operator in ("==", "===")}
        if a.req.url or e.req.url or len(pins) > 1:
            raise InitError(f"{e.origin}: {e.text!r} contradicts {a.origin}: {a.text!r}; "
                            f"name {a.req.name} once (or choose with --pin {a.req.name}==VERSION)")
        extras = sorted(a.req.extras | e.req.extras)
        marker = a.req.marker if str(a.req.marker) == str(e.req.marker) else None
        combined = (a.req.name + (f"[{','.join(extras)}]" if extras else "") + str(a.req.specifier & e.req.specifier)
                    + (f"; {marker}" if marker else ""))
        merged = Entry(Requirement(combined), a.origin, tuple(sorted(set(a.hashes) | set(e.hashes))), a.pinned_by)
        draft.notes.append(f"{a.origin} and {e.origin} both name {a.req.name}: the {what} is {combined!r}")
        by[key] = merged
    return list(by.values())


def choose_target(python: str | None, base: str | None, draft: Draft) -> tuple[str, str]:
    """The spec's (python, OS base): see the module docstring."""
    have = ", ".join(f"{d.name} has {d.python}" for d in DISTROS.values())
    if python is not None and not re.fullmatch(r"3\.\d{1,2}", python):
        raise InitError(f"--python {python}: expected a minor version such as 3.11")
    if base is not None and base not in DISTROS:
        raise InitError(f"--base {base}: expected one of {', '.join(DISTROS)}")
    if python is not None:
        bases = [d.name for d in DISTROS.values() if d.python == python]
        if base is not None and DISTROS[base].python != python:
            raise InitError(f"--python {python} --base {base}: {base} ships Python {DISTROS[base].python} and the env "
                            f"runs on its interpreter; Python {python} is in: {', '.join(bases) or 'no OS base'} "
                            f"({have})")
        if not bases:
            raise InitError(f"--python {python}: no OS base ships Python {python}, and the env runs on the base's "
                            f"interpreter ({have})")
        base = base or bases[0]
    if base is not None:
        chosen = DISTROS[base]
        for spec, origin in draft.python_required:
            if not spec.contains(chosen.python, prereleases=True):
                fits = [d.name for d in DISTROS.values() if spec.contains(d.python, prereleases=True)]
                raise InitError(f"{origin}: requires Python {spec}, but {chosen.name} ships {chosen.python}; "
                                f"bases that fit: {', '.join(fits) or 'none'} ({have})")
        return chosen.python, chosen.name
    candidates = [d for d in DISTROS.values()
                  if all(s.contains(d.python, prereleases=True) for s, _ in draft.python_required)]
    if not candidates:
        wanted = "; ".join(f"{o} requires {s}" for s, o in draft.python_required)
        raise InitError(f"{wanted}: no OS base's Python fits ({have})")
    chosen = candidates[0]
    if draft.python_wanted:
        wish, origin = draft.python_wanted[-1]
        exact = [d for d in candidates if d.python == wish]
        newer = [d for d in candidates if _ver(d.python) >= _ver(wish)]
        chosen = (exact or newer or candidates[-1:])[0]
        if chosen.python != wish:
            draft.notes.append(f"{origin}: Python {wish}, which no OS base ships ({have}); the spec takes "
                               f"{chosen.python} ({chosen.name}); --python or --base chooses another")
    return chosen.python, chosen.name


def _ver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _name(explicit: str | None, draft: Draft, first: Path) -> str:
    if explicit is not None:
        if not re.fullmatch(NAME_PATTERN, explicit):
            raise InitError(f"--name {explicit}: expected lower-case letters, digits and '-' (no dots), like 'abide'")
        return explicit
    stem = first.name.split(".")[0] if first.name.lower().endswith((".dockerfile", ".yml", ".yaml", ".txt", ".in")) \
        else ""
    generic = {"", "requirements", "environment", "dockerfile", "containerfile", "pyproject"}
    for candidate in [*draft.names, *([stem] if stem.lower() not in generic else []), first.resolve().parent.name]:
        name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", candidate.lower())).strip("-")[:64].strip("-")
        if name and re.fullmatch(NAME_PATTERN, name):
            return name
    return "env"


def exact_pins(entries: list[Entry]) -> list[tuple[str, str]]:
    """(name, version) of each entry pinned to one version (``==V`` without a wildcard, or ``===V``)."""
    out = []
    for e in entries:
        if e.req.url:
            continue
        spec = [s for s in e.req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if spec:
            out.append((canonicalize_name(e.req.name), spec[0].version))
    return sorted(set(out))


def _date(option: str | None, entries: list[Entry], python: str, base: str, say) -> tuple[SnapshotDate, list[dict]]:
    if option is None:
        return today(), []
    if option == "auto":
        pins = exact_pins(entries)
        if not pins:
            raise InitError("--date auto dates the exact pins (NAME==VERSION), and there are none; give --date")
        from .pypi import auto_date

        say(f"looking up when {len(pins)} pinned releases were uploaded (PyPI JSON API)")
        auto, uploads = auto_date(pins, python, base, PLATFORM)
        return auto, [{"name": u.name, "version": u.version, "file": u.filename,
                       "upload_time": u.time.strftime("%Y-%m-%dT%H:%M:%SZ")} for u in uploads]
    given = parse_date_option(option)
    if given is None:
        raise InitError(f"--date {option}: expected auto, a date such as 2025-05-08, or an RFC 3339 UTC time")
    if given > dt.datetime.now(dt.UTC):
        raise InitError(f"--date {option}: in the future; a snapshot can only freeze what has been published")
    return given, []


def write(p: Plan, lock: bool, progress=None, store=None):
    """Lock (unless *lock* is false), then write the spec; the lock's result (or None) and warnings.

    The lock comes first: when it fails, nothing is written.
    """
    from ..errors import EnvgenError
    from ..fsutil import atomic_write

    result = None
    warnings: list[str] = []
    if lock:
        from ..lock.make import lock_spec

        try:
            result = lock_spec(p.spec, progress, store=store)
        except EnvgenError as exc:
            raise InitError(f"the lock failed, so {p.path} was not written: {exc}",
                            hint="--no-lock writes the spec without locking it") from None
        warnings += result.warnings + check_hashes(p.requirements, result.lock)
    atomic_write(p.path, p.text)
    return result, warnings


def check_hashes(requirements: list[Entry], lock) -> list[str]:
    """A warning for each hashed pin whose locked artifacts are none of the hashes the file gave."""
    from packaging.version import Version

    out = []
    for e in requirements:
        pins = [s.version for s in e.req.specifier if s.operator == "=="]
        if not e.hashes or not pins:
            continue
        pkg = lock.package(e.req.name)
        if pkg is None:
            continue
        if pkg.version is None or Version(pkg.version) != Version(pins[0]):
            out.append(f"{e.origin}: {e.text} was hashed, but the lock has {pkg.name} {pkg.version}")
            continue
        arts = pkg.wheels + ([pkg.sdist] if pkg.sdist else [])
        if not {a.sha256 for a in arts} & set(e.hashes):
            files = ", ".join(f"{a.filename} ({a.sha256[:12]}…)" for a in arts)
            out.append(f"{e.origin}: the lock's {files} is none of the {len(e.hashes)} hashes given for "
                       f"{e.text}: the file hashed other artifacts (another platform?) or the index changed them")
    return out
