"""File kinds envgen writes, each with its own format version, and the one reader check.

Every file envgen writes names its kind and carries a ``format-version``.
Readers call :func:`check` (or :func:`load_json`): a missing or malformed
version is a :class:`~envgen.errors.FormatError`, a newer one a
:class:`~envgen.errors.NewerFormatError` that says to upgrade envgen.  Old
versions stay readable; a bump here comes with a migration in the reader.
"""

from __future__ import annotations

from .errors import FormatError, NewerFormatError

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

# kind -> the newest format-version this envgen writes and reads
VERSIONS: dict[str, int] = {
    "envgen-spec": 1,
    "envgen-lock": 2,          # the [tool.envgen] table of pylock.NAME.toml (2: source-builds; reads 1)
    "envgen-store": 1,
    "envgen-snapshot": 1,
    "envgen-bundle": 2,        # 2: envgen's own runtime and VERIFY.sh (selfhost-snapshot-id); reads 1
    "envgen-tree": 1,          # trees/KEY/meta.json
    "envgen-nix-tree": 1,      # nix-trees/PATH.json
    "envgen-nix-data": 1,      # nix/specs/NAME.json
    "envgen-sweep": 1,
    "envgen-run-cache": 3,     # cache/run/KEY.marshal, a launch plan (2: lstat-checked sources, tree identity;
                               # 3: marshal, not JSON: `envgen run` reads it without importing json)
    "envgen-records": 2,       # the SQLite schema (2: runs.state, runs.owner; reads 1 and migrates it)
    "envgen-built-wheel": 1,   # built-wheels/KEY.json: a wheel built from source, by its inputs
    "envgen-pending-run": 1,   # records.d/ID.json: a run's record before a reader moves it into records.sqlite
    "envgen-unit": 1,          # units/KEY/meta.json: one package installed once, shared by trees
}

LABELS = {
    "envgen-spec": "spec", "envgen-lock": "lock", "envgen-store": "store", "envgen-snapshot": "snapshot manifest",
    "envgen-bundle": "bundle", "envgen-tree": "tree metadata", "envgen-nix-tree": "Nix tree metadata",
    "envgen-nix-data": "Nix spec data", "envgen-sweep": "sweep", "envgen-run-cache": "run cache",
    "envgen-records": "records database", "envgen-built-wheel": "built-wheel record",
    "envgen-pending-run": "run record file",
    "envgen-unit": "install unit",
}


def current(kind: str) -> int:
    return VERSIONS[kind]


def check(kind: str, version: Any, where: str, *, default: int | None = None) -> int:
    """The format-version *version* of a *kind* file at *where*, if this envgen can read it."""
    if version is None and default is not None:
        version = default
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{where}: {LABELS[kind]} without a valid format-version (got {version!r})")
    newest = VERSIONS[kind]
    if version > newest:
        raise NewerFormatError(
            f"{where}: {LABELS[kind]} format {version} needs a newer envgen (this one reads up to {newest})",
            hint="upgrade envgen")
    return version


def check_doc(kind: str, doc: Any, where: str) -> dict:
    """Check that *doc* is a JSON object of *kind* with a readable format-version; return it."""
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise FormatError(f"{where}: not an envgen {LABELS[kind]}")
    check(kind, doc.get("format-version"), where)
    return doc


def load_json(kind: str, data: bytes | str, where: str) -> dict:
    """Parse and check a JSON document of *kind*."""
    import json  # here: `envgen run` reads formats.header from this module and writes JSON without json

    try:
        doc = json.loads(data)
    except ValueError:
        raise FormatError(f"{where}: not an envgen {LABELS[kind]} (invalid JSON)") from None
    return check_doc(kind, doc, where)


def header(kind: str) -> dict:
    """The ``kind`` and ``format-version`` keys every document of *kind* starts with."""
    return {"format-version": VERSIONS[kind], "kind": kind}
