"""A Dockerfile's ``pip install`` commands -> requirements.

Instructions are read as Docker reads them (``\\`` continues a line, ``#``
lines are comments, ``ARG``/``ENV`` values are substituted into ``RUN``).
Each ``RUN`` (shell or exec form) is split into commands at ``&&``, ``||``,
``;`` and ``|``; a command that runs ``pip install`` (also ``pip3``,
``pythonX -m pip`` and ``uv pip install``) has its arguments read through
the same pip options table as a requirements file.  Files it names
(``-r requirements.txt``, ``.``) are found in the build context through the
``COPY``/``ADD`` instructions before it and the ``WORKDIR``.

The ``FROM`` image says which Python the image had (``python:3.10`` -> 3.10);
``apt-get install`` and ``conda install`` packages, and the image's
``ENTRYPOINT``/``CMD``, are reported, not carried.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from pathlib import Path

from .draft import InitError, Origin
from .pipreqs import Reader

_PYTHON_IMAGE = re.compile(r"(?:^|/)python:(?P<ver>\d+\.\d+)")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_PIP = re.compile(r"^pip(?:3(?:\.\d+)?)?$")
_PYTHON = re.compile(r"^python(?:3(?:\.\d+)?)?$")
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) of a Dockerfile, continuations joined and comments dropped."""
    escape = "\\"
    lines = text.splitlines()
    m = re.match(r"^#\s*escape\s*=\s*(\S)", lines[0]) if lines else None
    if m:
        escape = m[1]
    out: list[tuple[int, str, str]] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not buf:
            if not stripped or stripped.startswith("#"):
                continue
            start = no
        elif stripped.startswith("#") or not stripped:
            continue  # comment and empty lines inside a continued instruction
        if stripped.endswith(escape):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        joined = " ".join(buf).strip()
        buf = []
        word, _, args = joined.partition(" ")
        out.append((start, word.upper(), args.strip()))
    if buf:
        joined = " ".join(buf).strip()
        word, _, args = joined.partition(" ")
        out.append((start, word.upper(), args.strip()))
    return out


def read_dockerfile(path: Path, reader: Reader) -> None:
    d = reader.draft
    where = reader.rel(path)
    d.sources.append(where)
    context = path.parent
    values: dict[str, str] = {}
    copies: list[tuple[str, str]] = []  # (path in the image, path in the context), latest last
    workdir = "/"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InitError(f"{where}: not UTF-8 text") from None
    for no, word, args in instructions(text):
        origin = Origin(where, no)
        if word == "FROM":
            image = _substitute(args.split()[0] if args else "", values, origin, strict=False)
            d.notes.append(f"{origin}: the image starts FROM {image}; the spec's OS base replaces it")
            if m := _PYTHON_IMAGE.search(image):
                d.python_wanted.append((m["ver"], origin))
        elif word in ("ARG", "ENV"):
            _assign(word, args, values, origin)
        elif word == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, _substitute(args, values, origin, strict=False)))
        elif word in ("COPY", "ADD"):
            _copy(args, values, workdir, copies, origin)
        elif word == "RUN":
            if re.search(r"<<-?\s*['\"]?[A-Za-z_]", args):
                if "pip" in args:
                    raise InitError(f"{origin}: a RUN here-document that mentions pip; envgen init reads "
                                    "pip install in RUN commands, not in here-documents")
                continue
            for argv in _commands(args, values, origin):
                _command(argv, origin, reader, context, copies, workdir)
        elif word in ("ENTRYPOINT", "CMD"):
            d.notes.append(f"{origin}: the image's {word} was {args}; set [run] command to what the env runs")


def _assign(word: str, args: str, values: dict[str, str], origin: Origin) -> None:
    try:
        parts = shlex.split(args)
    except ValueError as exc:
        raise InitError(f"{origin}: cannot split {word} {args!r}: {exc}") from None
    if word == "ENV" and len(parts) >= 2 and "=" not in parts[0]:  # legacy "ENV KEY value words"
        values[parts[0]] = " ".join(parts[1:])
        return
    for p in parts:
        key, eq, value = p.partition("=")
        if eq:
            values[key] = _substitute(value, values, origin, strict=False)
        elif word == "ARG":
            values.setdefault(key, "")  # an ARG without a default: given at build time, unknown here


def _substitute(text: str, values: dict[str, str], origin: Origin, strict: bool = True) -> str:
    def repl(m: re.Match) -> str:
        name = m["braced"] or m["plain"]
        if values.get(name):
            return values[name]
        if m["default"] is not None:
            return m["default"]
        if strict:
            raise InitError(f"{origin}: ${name} has no value in the Dockerfile (a build argument?); "
                            "envgen init cannot know what it was")
        return m[0]

    return _VAR.sub(repl, text)


def _copy(args: str, values: dict[str, str], workdir: str, copies: list[tuple[str, str]], origin: Origin) -> None:
    args = _substitute(args, values, origin, strict=False)
    if args.startswith("["):
        try:
            parts = json.loads(args)
        except json.JSONDecodeError:
            return
    else:
        parts = args.split()
    parts = [p for p in parts if not p.startswith("--")]  # --chown=, --from=, --link …
    if len(parts) < 2 or any(p.startswith("--from") for p in args.split()):
        return  # a copy from another stage or image: not the build context
    *sources, dest = parts
    dest = posixpath.normpath(posixpath.join(workdir, dest)) + ("/" if dest.endswith("/") else "")
    for src in sources:
        src = posixpath.normpath(src)
        if len(sources) > 1 or dest.endswith("/") or src == ".":
            copies.append((posixpath.join(dest.rstrip("/") or "/", "" if src == "." else posixpath.basename(src)),
                           src))
        else:
            copies.append((dest.rstrip("/"), src))


def _context_path(image_path: str, workdir: str, context: Path, copies: list[tuple[str, str]]) -> Path | None:
    """The file or directory of the build context that *image_path* (in a RUN) is a copy of, if any."""
    target = posixpath.normpath(posixpath.join(workdir, image_path))
    for dest, src in reversed(copies):
        dest = posixpath.normpath(dest)
        if target == dest:
            return (context / src).resolve()
        if target.startswith(dest.rstrip("/") + "/"):
            return (context / src / posixpath.relpath(target, dest)).resolve()
    return None


def _commands(args: str, values: dict[str, str], origin: Origin) -> list[list[str]]:
    """The simple commands of a RUN, each as its words."""
    if args.startswith("["):
        try:
            argv = json.loads(args)
        except json.JSONDecodeError:
            raise InitError(f"{origin}: RUN {args!r} is neither a JSON array nor a shell command") from None
        return [[_substitute(a, values, origin, strict=_pip_args(argv) is not None) for a in argv]]
    lex = shlex.shlex(args, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError as exc:
        raise InitError(f"{origin}: cannot split the RUN command: {exc}") from None
    out: list[list[str]] = [[]]
    skip = False
    for tok in tokens:
        if skip:  # the target of a redirection
            skip = False
        elif tok in _SEPARATORS:
            out.append([])
        elif re.fullmatch(r"[<>&]+", tok):  # a redirection (2>/dev/null: "2" ">" "/dev/null")
            if out[-1] and out[-1][-1].isdigit():
                out[-1].pop()
            skip = True
        else:
            out[-1].append(tok)
    commands = [c for c in out if c]
    return [[_substitute(t, values, origin) for t in c] if _pip_args(c) is not None else c for c in commands]


def _pip_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``install`` when *argv* runs pip install, else None."""
    i = 0
    while i < len(argv) and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[i]) or argv[i] in ("sudo", "exec", "command")):
        i += 1
    words = argv[i:]
    if not words:
        return None
    head = posixpath.basename(words[0])
    if _PIP.match(head):
        rest = words[1:]
    elif _PYTHON.match(head) and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    elif head == "uv" and words[1:2] == ["pip"]:
        rest = words[2:]
    else:
        return None
    while rest and rest[0].startswith("-") and rest[0] != "install":  # pip's own options before the command
        rest = rest[1:]
    return rest[1:] if rest[:1] == ["install"] else None


def _command(argv: list[str], origin: Origin, reader: Reader, context: Path, copies: list[tuple[str, str]],
             workdir: str) -> None:
    d = reader.draft
    head = posixpath.basename(argv[0]) if argv else ""
    if head in ("apt-get", "apt") and "install" in argv:
        pkgs = [a for a in argv[argv.index("install") + 1:] if not a.startswith("-")]
        if pkgs:
            d.omit(f"apt-get install {' '.join(pkgs)}", origin,
                   "Debian packages of the image: add those the env needs at run time to [os] packages")
        return
    if head in ("conda", "mamba", "micromamba") and "install" in argv:
        d.omit(" ".join(argv), origin, "conda packages: give envgen init an environment.yml for them")
        return
    args = _pip_args(argv)
    if args is None:
        return

    def local_file(value: str) -> str:
        found = _context_path(value, workdir, context, copies)
        if found is None or not found.exists():
            raise InitError(f"{origin}: pip install names {value!r}, which no COPY/ADD before it brings from "
                            "the build context; envgen init cannot tell which file that is")
        return str(found)

    # paths in the image -> paths in the build context, before the pip options table reads them
    mapped: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable") and i + 1 < len(args):
            value = args[i + 1]
            if a in ("-e", "--editable") and not _looks_local(value):
                mapped += [a, value]
            else:
                mapped += [a, local_file(value)]
            i += 2
            continue
        if re.match(r"^--(requirement|constraint|editable)=", a):
            name, _, value = a.partition("=")
            mapped.append(f"{name}={local_file(value) if name != '--editable' or _looks_local(value) else value}")
        elif not a.startswith("-") and _looks_local(a):
            mapped.append(local_file(a))
        elif re.match(r"^pip(?=$|[<>=!~\[;\s])", a, re.I):
            d.omit(a, origin, "the installer itself: envgen installs the env without pip")
        else:
            mapped.append(a)
        i += 1

    def positional(value: str) -> None:
        reader.requirement(value, origin, context)

    reader.options(mapped, origin, context, False, positional)


def _looks_local(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.startswith("file:") or (
        "/" in value and "://" not in value and "@" not in value)
