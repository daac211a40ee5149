"""``envgen update``: move a spec's snapshot date, re-lock, and say what changed.

The whole spec moves to the new date, or only the packages named: then every
other PyPI package of the current lock is held at its locked version by the
spec's ``[hold]`` table (``name = "version"``, a constraint on the resolution
that adds no package), so the named ones (and whatever new dependencies they
bring) are all that can change on the PyPI side.  A later update of the whole
spec releases every hold; deleting a line of ``[hold]`` releases one.  The
Debian side has one date for the whole OS layer, so it always moves with the
spec.

The spec is edited in place with tomlkit (its comments and layout stay), the
new spec is locked into a temporary directory, and only then are the spec
and the lock replaced, each atomically (the spec first: a crash between the
two leaves a lock that envgen reports as older than its spec).  With
``dry_run`` nothing is replaced.  Every ``[variants.NAME]`` of the spec is
locked at the new date too (its own packages are not held), before anything
is written, and its lock replaced with the others.  The difference between the old lock and
the new one is :func:`envgen.lock.diff.diff_locks` with each Debian change
marked ``security`` when its version carries a ``+debNuN``/``~debNuN``
security-update suffix or it comes from the ``debian-security`` archive.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
from packaging.utils import canonicalize_name

from .clock import SnapshotDate, parse_date_option, today
from .errors import EnvgenError, LockError, SpecError
from .fsutil import atomic_write
from .lock import pylock
from .lock.diff import diff_build, diff_locks
from .spec import Spec, load_spec, parse_spec

SECURITY_VERSION = re.compile(r"[+~]deb\d+u\d+")
HOLD_COMMENT = ("Held at their locked versions by `envgen update SPEC PKG…` while the named packages moved; "
                "`envgen update SPEC` releases them all, deleting a line releases one.")


class UpdateError(EnvgenError):
    """A spec cannot be updated as asked."""


@dataclass
class UpdateResult:
    spec: Spec  # the spec as it was
    new_text: str
    old_date: SnapshotDate
    new_date: SnapshotDate
    named: list[str]  # canonical names moved alone; [] for the whole spec
    held: dict[str, str]
    released: list[str]  # holds the update removed
    changes: list[dict]
    build_changes: list[dict]
    written: bool
    warnings: list[str] = field(default_factory=list)
    variants: dict[str, dict] = field(default_factory=dict)  # name -> {"lock", "changes", "build_changes"}


def edit_spec(text: str, where: str, date: SnapshotDate, hold: dict[str, str] | None) -> str:
    """*text* with its snapshot date set, and its ``[hold]`` table replaced (*hold*) or removed (None)."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise SpecError(f"{where}: invalid TOML: {exc}") from None
    doc["snapshot-date"] = tomlkit.parse(f"x = {date.iso}")["x"]
    if hold:
        table = tomlkit.table()
        for line in _wrap(HOLD_COMMENT, 100):
            table.add(tomlkit.comment(line))
        for name, version in sorted(hold.items()):
            table.add(name, version)
        doc["hold"] = table
    elif "hold" in doc:
        del doc["hold"]
    return tomlkit.dumps(doc)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def is_security(change: dict, new: pylock.Lock) -> bool:
    """A Debian change whose new version is a security update (suffix, or the -security archive)."""
    if change["source"] not in ("debian", "debian-build") or change["new"] is None:
        return False
    deb = next((d for d in new.debian.packages if d.name == change["name"]), None)
    return bool(SECURITY_VERSION.search(change["new"])) or (deb is not None and deb.archive.endswith("-security"))


def update(spec_path: str | Path, date: str | None = None, packages: list[str] | None = None,
           dry_run: bool = False, progress=None, store=None) -> UpdateResult:
    from .lock.make import lock_spec

    say = progress or (lambda msg: None)
    spec = load_spec(spec_path)
    if not spec.lock_path.is_file():
        raise UpdateError(f"{spec.path} has no lock yet ({spec.lock_path}); there is nothing to update from",
                          hint=f"envgen lock {spec.path}")
    old = pylock.load(spec.lock_path)
    warnings = []
    if old.spec_sha256 != spec.sha256:
        warnings.append(f"{spec.lock_path} was made from an earlier version of {spec.path}; "
                        "the changes below are from that lock")
    new_date = today() if date is None else parse_date_option(date)
    if new_date is None:
        raise UpdateError(f"--date {date}: expected a date such as 2025-05-08 or an RFC 3339 UTC time")
    import datetime as dt

    if new_date > dt.datetime.now(dt.UTC):
        raise UpdateError(f"--date {date}: in the future; a snapshot can only freeze what has been published")

    named: list[str] = sorted({canonicalize_name(p) for p in packages or []})
    pypi = {p.name: p.version for p in old.packages if not p.is_local and p.vcs is None and p.version is not None}
    for n in named:
        if n not in pypi:
            raise UpdateError(f"{n} is not a PyPI package of {spec.lock_path}; update names packages of the lock "
                              f"(envgen graph {spec.path} lists them)")
    hold: dict[str, str] | None = {n: v for n, v in pypi.items() if n not in named} if named else None
    released = sorted(set(spec.hold) - set(hold or {}))
    new_text = edit_spec(spec.path.read_text(encoding="utf-8"), str(spec.path), new_date, hold or None)
    parse_spec(new_text.encode(), str(spec.path), spec.dir)  # the edit must give a valid spec

    tmp = Path(tempfile.mkdtemp(prefix="envgen-update-"))
    try:
        staged = parse_spec(new_text.encode(), str(tmp / spec.path.name), spec.dir)  # locks into tmp
        say(f"locking {spec.path} at {new_date.iso}")
        try:
            result = lock_spec(staged, progress, store=store)
        except EnvgenError as exc:
            hint = (f"the other packages are held at their locked versions: name the ones that must move too, "
                    f"or update the whole spec (envgen update {spec.path})") if named else None
            raise LockError(f"{spec.path} at {new_date.iso} does not lock: {exc}", hint=hint) from None
        changes, build = _changes(old, result.lock)
        # every variant moves with the spec (a lock made from the old spec would be stale): each is locked
        # too, before anything is written; a variant's own packages are not held
        variants: dict[str, dict] = {}
        staged_locks = [(spec.lock_path, result.path)]
        for name in sorted(staged.variants):
            say(f"locking {spec.path} (variant {name}) at {new_date.iso}")
            try:
                vr = lock_spec(staged.for_variant(name), progress, store=store)
            except EnvgenError as exc:
                raise LockError(f"{spec.path}'s variant {name} at {new_date.iso} does not lock: {exc}",
                                hint=f"nothing was written; change or remove [variants.{name}] in the spec, "
                                     "then update again") from None
            target = spec.for_variant(name).lock_path
            before = pylock.load(target) if target.is_file() else None
            vchanges, vbuild = _changes(before, vr.lock) if before is not None else (None, None)
            variants[name] = {"lock": str(target), "changes": vchanges, "build_changes": vbuild}
            staged_locks.append((target, vr.path))
            warnings += vr.warnings
        if not dry_run:
            atomic_write(spec.path, new_text)
            for target, made in staged_locks:
                atomic_write(target, made.read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return UpdateResult(spec=spec, new_text=new_text, old_date=spec.snapshot_date, new_date=new_date, named=named,
                        held=hold or {}, released=released, changes=changes, build_changes=build,
                        written=not dry_run, warnings=list(dict.fromkeys(warnings + result.warnings)),
                        variants=variants)


def _changes(old: pylock.Lock, new: pylock.Lock) -> tuple[list[dict], list[dict]]:
    """What moved from *old* to *new*: the env's packages, and the build-time ones; Debian changes marked
    ``security`` or not."""
    changes = diff_locks(old, new)
    build = diff_build(old, new)
    for c in changes + build:
        if c["source"].startswith("debian"):
            c["security"] = is_security(c, new)
    return changes, build
