"""pip's requirement syntax, as ``envgen init`` reads it: requirements files and ``pip install`` arguments.

A requirements file is read the way pip reads one: ``\\`` continues a line,
``#`` after whitespace starts a comment, ``-r``/``-c`` include other files
(relative to the including file), ``--hash`` follows a requirement, and every
other line is a PEP 508 requirement (parsed by :mod:`packaging`), a local
path, or a VCS URL.  ``pip install`` arguments in a Dockerfile go through the
same options table, so both read an option the same way.

What becomes what:

* ``NAME==V --hash=sha256:…`` -> the requirement ``NAME==V``; the hashes are
  kept aside (the lock re-derives every artifact's sha256 from the index, and
  ``envgen init`` then checks it is one of them);
* a marker stays as written;
* ``-c FILE`` lines -> the spec's ``constraints``;
* ``-e PATH`` or ``PATH`` (a directory with a pyproject.toml) -> ``local``;
* ``--no-binary NAME`` -> ``[build] from-source``;
* ``git+URL@<40-hex commit>`` -> ``NAME @ git+URL@<commit>``; a branch, a tag
  or no ref at all moves, so it is refused unless ``--pin NAME==V`` replaces it;
* an option that changes what is installed but has no place in a spec
  (another index, ``--pre``, ``--no-deps``, build options) -> an
  :class:`~envgen.init.draft.Omitted` entry saying why; options about how pip
  runs (``--upgrade``, ``--no-cache-dir``, ``-q``) mean nothing here and are
  passed over.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..spec import VCS_URL, pinned_vcs_commit
from .draft import Draft, Entry, InitError, Origin

# pip install options that take a value, by every spelling -> the long name
VALUE_OPTIONS = {
    "-r": "--requirement", "-c": "--constraint", "-e": "--editable", "-i": "--index-url", "-f": "--find-links",
    "-t": "--target", "-C": "--config-settings", "-p": "--python",
    **{o: o for o in (
        "--requirement", "--constraint", "--editable", "--index-url", "--extra-index-url", "--find-links",
        "--trusted-host", "--no-binary", "--only-binary", "--hash", "--config-settings", "--global-option",
        "--install-option", "--use-feature", "--use-deprecated", "--target", "--prefix", "--root", "--platform",
        "--python-version", "--implementation", "--abi", "--upgrade-strategy", "--progress-bar", "--cache-dir",
        "--src", "--root-user-action", "--log", "--proxy", "--retries", "--timeout", "--exists-action", "--cert",
        "--client-cert", "--report", "--python", "--keyring-provider", "--index-strategy", "--extra", "--group",
    )},
}
# flags (no value); single letters may be bundled (-qU)
FLAGS = {
    "-U": "--upgrade", "-q": "--quiet", "-v": "--verbose", "-I": "--ignore-installed", "-y": "--yes",
    **{f: f for f in (
        "--upgrade", "--quiet", "--verbose", "--ignore-installed", "--user", "--no-deps", "--pre",
        "--force-reinstall", "--ignore-requires-python", "--no-build-isolation", "--no-cache-dir", "--no-cache",
        "--no-compile", "--compile", "--disable-pip-version-check", "--no-warn-script-location",
        "--no-warn-conflicts", "--break-system-packages", "--require-hashes", "--no-index", "--prefer-binary",
        "--isolated", "--no-clean", "--dry-run", "--no-input", "--no-color", "--system", "--yes",
        "--no-python-version-warning", "--use-pep517", "--no-use-pep517", "--check-build-dependencies",
        "--all-extras", "--strict",
    )},
}
INDEX_REASON = "envgen locks against one index: PyPI, or $ENVGEN_INDEX_URL when it is set"
IGNORED_REASONS = {
    "--index-url": INDEX_REASON,
    "--extra-index-url": INDEX_REASON,
    "--find-links": INDEX_REASON,
    "--no-index": INDEX_REASON,
    "--pre": "a pre-release is chosen only where a requirement names one (e.g. NAME==2.0rc1)",
    "--no-deps": "envgen installs every dependency the resolution needs",
    "--only-binary": "envgen installs the wheel the target has and builds from the sdist only where it has none",
    "--platform": "the spec's python and platforms decide the target",
    "--python-version": "the spec's python and platforms decide the target",
    "--implementation": "the spec's python and platforms decide the target",
    "--abi": "the spec's python and platforms decide the target",
    "--python": "the spec's python decides the interpreter",
    "--config-settings": "build options are not carried: a source build runs its backend's defaults",
    "--global-option": "build options are not carried: a source build runs its backend's defaults",
    "--install-option": "build options are not carried: a source build runs its backend's defaults",
    "--extra": "uv's --extra is not read; give pyproject.toml to envgen init with --extra NAME",
    "--group": "dependency groups are not read",
    "--all-extras": "uv's --all-extras is not read; give pyproject.toml to envgen init with --extra NAME",
    "--ignore-requires-python": "the lock keeps to each project's requires-python",
}
_HASH = re.compile(r"^(?P<algo>[a-z0-9]+):(?P<hex>[0-9a-fA-F]+)$")
_EGG = re.compile(r"[#&]egg=(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Reader:
    """Reads into one draft; knows where the spec will be (paths in the spec and in messages are relative to it)."""

    draft: Draft
    spec_dir: Path
    _open: list[Path] = field(default_factory=list)  # files being read: -r cycles

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), self.spec_dir.resolve())).as_posix()

    # ------------------------------------------------------------------ requirements files

    def read_file(self, path: Path, constraint: bool = False, via: Origin | None = None) -> None:
        path = path.resolve()
        if not path.is_file():
            where = f"{via}: " if via else ""
            raise InitError(f"{where}{self.rel(path)}: no such requirements file")
        if path in self._open:
            raise InitError(f"{via}: {self.rel(path)} includes itself (-r/-c cycle)")
        self._open.append(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InitError(f"{self.rel(path)}: not UTF-8 text") from None
        if via is None:
            self.draft.sources.append(self.rel(path))
        for lineno, line in logical_lines(text):
            self.line(line, Origin(self.rel(path), lineno), path.parent, constraint)
        self._open.pop()

    def line(self, line: str, origin: Origin, base: Path, constraint: bool = False) -> None:
        """One logical line of a requirements file."""
        if "${" in line:
            raise InitError(f"{origin}: {line!r} uses an environment variable; a spec cannot depend on the "
                            "host's environment, so write the value out")
        if line.startswith("-"):
            try:
                tokens = shlex.split(line)
            except ValueError as exc:
                raise InitError(f"{origin}: cannot split {line!r}: {exc}") from None
            rest = self.options(tokens, origin, base, constraint, positional=None)
            if rest:
                raise InitError(f"{origin}: unexpected {' '.join(rest)!r} after the option")
            return
        req_text, opts = split_options(line)
        hashes: list[str] = []
        try:
            tokens = shlex.split(opts)
        except ValueError as exc:
            raise InitError(f"{origin}: cannot split {opts!r}: {exc}") from None
        i = 0
        while i < len(tokens):
            name, value, i = _take_option(tokens, i, origin)
            if name == "--hash":
                m = _HASH.match(value or "")
                if not m:
                    raise InitError(f"{origin}: --hash {value!r}: expected ALGORITHM:HEX")
                if m["algo"] == "sha256":
                    hashes.append(m["hex"].lower())
                else:
                    self.draft.omit(f"--hash={value}", origin, "only sha256 hashes are compared with the lock")
            elif name in IGNORED_REASONS:
                self.draft.omit(f"{name}={value}" if value else name, origin, IGNORED_REASONS[name])
            else:
                raise InitError(f"{origin}: {name} is not an option a requirement line takes")
        self.requirement(req_text, origin, base, tuple(hashes), constraint)

    # ------------------------------------------------------------------ options (files and pip install)

    def options(self, tokens: list[str], origin: Origin, base: Path, constraint: bool,
                positional: Callable[[str], None] | None) -> list[str]:
        """Apply pip options in *tokens*; positionals go to *positional* (or are returned when it is None)."""
        rest: list[str] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if not tok.startswith("-") or tok == "-":
                if positional is None:
                    rest.append(tok)
                else:
                    positional(tok)
                i += 1
                continue
            name, value, i = _take_option(tokens, i, origin)
            self.option(name, value, origin, base, constraint)
        return rest

    def option(self, name: str, value: str | None, origin: Origin, base: Path, constraint: bool) -> None:
        d = self.draft
        if name == "--requirement":
            assert value is not None
            self.read_file(base / value, constraint, via=origin)
        elif name == "--constraint":
            assert value is not None
            self.read_file(base / value, True, via=origin)
        elif name == "--editable":
            assert value is not None
            self.requirement(value, origin, base, (), constraint)
        elif name == "--no-binary":
            assert value is not None
            for item in filter(None, (v.strip() for v in value.split(","))):
                if item == ":all:":
                    d.omit("--no-binary :all:", origin, "name the projects to build from source: "
                           "--no-binary NAME becomes [build] from-source")
                elif item != ":none:":
                    d.from_source.append(item)
        elif name == "--only-binary" and value == ":none:":
            pass
        elif name in IGNORED_REASONS:
            d.omit(f"{name} {value}" if value else name, origin, IGNORED_REASONS[name])
        # everything else says how pip runs (-U, -q, --no-cache-dir, --user, --target, …): nothing to carry

    # ------------------------------------------------------------------ one requirement

    def requirement(self, text: str, origin: Origin, base: Path, hashes: tuple[str, ...] = (),
                    constraint: bool = False) -> None:
        d = self.draft
        if "${" in text:
            raise InitError(f"{origin}: {text!r} uses an environment variable; write the value out")
        path = _as_path(text, base)
        if path is not None:
            if constraint:
                d.omit(text, origin, "a path in a constraints file constrains nothing that envgen resolves")
                return
            self.local(path, origin, text)
            return
        if VCS_URL.match(text):  # pip's bare form: git+https://host/repo@ref#egg=name
            m = _EGG.search(text)
            name = m["name"] if m else _name_from_url(text)
            url = _without_egg(text)
            req = _parse(f"{name} @ {url}", origin, text)
            self._vcs(req, origin, text, inferred=m is None, constraint=constraint)
            return
        req = _parse(text, origin, text)
        if req.url:
            if VCS_URL.match(req.url):
                self._vcs(req, origin, text, inferred=False, constraint=constraint)
                return
            if req.url.startswith("file:"):
                self.local(_file_url_path(req.url, base), origin, text)
                return
            raise InitError(f"{origin}: {text!r} is a direct URL; envgen locks releases of an index, so pin one: "
                            f"--pin {req.name}==VERSION")
        if constraint:
            if req.extras:
                d.omit(text, origin, "a constraint cannot name extras (pip refuses them too)")
                return
            d.constraints.append(Entry(req, origin, hashes))
        else:
            d.requirements.append(Entry(req, origin, hashes))

    def _vcs(self, req: Requirement, origin: Origin, text: str, inferred: bool, constraint: bool) -> None:
        if constraint:
            self.draft.omit(text, origin, "a VCS URL in a constraints file constrains nothing that envgen resolves")
            return
        entry = Entry(req, origin)
        if inferred:
            self.draft.notes.append(f"{origin}: {text!r} names no project (#egg=); taking {req.name!r} from its URL")
        self.draft.requirements.append(entry)

    def local(self, path: Path, origin: Origin, text: str) -> None:
        if not path.is_dir():
            raise InitError(f"{origin}: {text!r} is a file, not a project directory; envgen installs releases "
                            "of an index or local projects (a directory with a pyproject.toml)")
        if not (path / "pyproject.toml").is_file():
            raise InitError(f"{origin}: {text!r} has no pyproject.toml; envgen's local projects need one "
                            "(a setup.py-only project can add a minimal [build-system] table)")
        self.draft.local.append((path.resolve(), origin))


def floating_vcs(entry: Entry) -> str | None:
    """Why *entry*'s VCS URL moves (a branch or tag, or no ref at all), or None if it names a commit (or no URL)."""
    url = entry.req.url
    if not url or pinned_vcs_commit(url):
        return None
    path = url.split("://", 1)[-1].split("#", 1)[0]
    host_and_path = path.split("/", 1)
    ref = host_and_path[1].rpartition("@")[2] if len(host_and_path) == 2 and "@" in host_and_path[1] else None
    if ref is None:
        return "names no commit, so it follows the repository's default branch"
    if re.fullmatch(r"[0-9a-f]{7,39}", ref):
        return f"names {ref!r}, a short commit id; give all 40 hex digits"
    return f"follows {ref!r}, a branch or tag, which moves"


def repo_of(url: str) -> str:
    """``git+https://host/repo@ref#…`` -> ``https://host/repo``."""
    url = re.sub(r"^[a-z]+\+", "", url.split("#", 1)[0])
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}/{path.rpartition('@')[0] if '@' in path else path}"


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: continuations joined, comments and blanks gone."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = no
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\") and not re.search(r"(^|\s)#", raw):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(s.strip() for s in buf).strip()
        buf = []
        if joined:
            out.append((start, joined))
    if buf and (joined := " ".join(s.strip() for s in buf).strip()):
        out.append((start, joined))
    return out


def split_options(line: str) -> tuple[str, str]:
    """``REQ --hash=… --hash=…`` -> (``REQ``, ``--hash=… --hash=…``): options start at the first `` -`` word."""
    m = re.search(r"(^|\s)-", line)
    if not m:
        return line.strip(), ""
    return line[:m.start()].strip(), line[m.start():].strip()


def _take_option(tokens: list[str], i: int, origin: Origin) -> tuple[str, str | None, int]:
    """The option at tokens[i] (long name, value) and the index after it."""
    tok = tokens[i]
    if tok.startswith("--") and "=" in tok:
        name, value = tok.split("=", 1)
        long = VALUE_OPTIONS.get(name) or FLAGS.get(name)
        if long is None:
            raise InitError(f"{origin}: unknown pip option {name}; envgen init reads pip's install options")
        return long, value, i + 1
    if tok in VALUE_OPTIONS:
        if i + 1 >= len(tokens):
            raise InitError(f"{origin}: {tok} needs a value")
        return VALUE_OPTIONS[tok], tokens[i + 1], i + 2
    if tok in FLAGS:
        return FLAGS[tok], None, i + 1
    if re.fullmatch(r"-[A-Za-z]{2,}", tok):  # bundled: -qU, or -rFILE
        if tok[:2] in VALUE_OPTIONS:
            return VALUE_OPTIONS[tok[:2]], tok[2:], i + 1
        if all(f"-{c}" in FLAGS for c in tok[1:]):
            return FLAGS[f"-{tok[1]}"], None, i + 1  # none of the single-letter flags carries anything
    if tok[:2] in VALUE_OPTIONS and len(tok) > 2 and not tok.startswith("--"):
        return VALUE_OPTIONS[tok[:2]], tok[2:], i + 1
    raise InitError(f"{origin}: unknown pip option {tok}; envgen init reads pip's install options")


def _parse(text: str, origin: Origin, shown: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise InitError(f"{origin}: {shown!r} is not a PEP 508 requirement ({reason})") from None


def _as_path(text: str, base: Path) -> Path | None:
    """The directory or file *text* names, when it is a path rather than a requirement."""
    if text.startswith("file:"):
        return _file_url_path(text, base)
    if text.startswith((".", "/", "~")) or (("/" in text or "\\" in text) and "://" not in text and "@" not in text):
        return (base / Path(text).expanduser()).resolve()
    return None


def _file_url_path(url: str, base: Path) -> Path:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    return (base / unquote(parsed.path if parsed.netloc in ("", "localhost") else url)).resolve()


def _without_egg(url: str) -> str:
    """*url* without its ``egg=`` fragment parameter (a PEP 508 ``NAME @ URL`` names the project itself)."""
    base, hashmark, fragment = url.partition("#")
    rest = [p for p in fragment.split("&") if p and not p.startswith("egg=")]
    return base + ("#" + "&".join(rest) if hashmark and rest else "")


def _name_from_url(url: str) -> str:
    path = url.split("#", 1)[0].split("://", 1)[-1].split("/", 1)[-1]
    last = path.rpartition("@")[0] if "@" in path else path
    name = last.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise InitError(f"cannot tell the project name of {url!r}; add #egg=NAME")
    return name
