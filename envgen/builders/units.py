"""Install units: every package installed once into the store, and hard-linked into each tree that uses it.

A tree is assembled from units instead of being installed whole, so a tree
that differs from another by one package costs one package's install and
bytecode, and the trees of a store share their files' inodes.  A unit is one
directory of the store::

    units/<key>/meta.json     {"format-version", "kind": "envgen-unit", "key", "unit", "name",
                               "inputs": what the key hashes, "epoch": the mtime of its files, "files"}
    units/<key>/listing.txt   its listing (the tree digest's line format, paths relative to root/)
    units/<key>/root/         its files at their in-tree paths, read-only, in their final modes

Three kinds, each keyed by everything its bytes are a function of:

``deb``
    The data member of one runtime .deb, unpacked (:func:`envgen.builders.debs.extract_deb`).
    Key: the .deb's sha256.
``wheel``
    One wheel installed by pypa ``installer`` as the whole-tree install does
    (prefix /opt/env, the same scheme, shebangs and RECORD), with its
    unchecked-hash bytecode.  A wheel no unit holds yet is installed into the
    tree being built and compiled there by the assembler (``assemble.py
    units``: the whole-tree install's own compiler, because a pyc
    depends on the strings the compiling process holds interned), and its
    files (its RECORD, and a pyc per .py) are hard-linked into its unit as
    the assembler says they are final: the installed files while compileall
    runs, each chunk's pycs when the chunk is done (:class:`Harvester`).
    Key: the wheel's sha256, the Python version and the sha256s of the
    interpreter's .debs, the installer wheel's sha256, the assembler version,
    the prefix and the bytecode exclusions.
``bytecode``
    The pycs of the standard library (``/usr/lib/python3.X``), which the
    whole-tree install compiles too.  Key: the path and sha256 of every .py
    file there, and the interpreter, assembler and exclusions as above.

What is per tree stays per tree and is written in the tree itself: the
mount points, the prefix's interpreter links and ``pyvenv.cfg``, the /etc
files, ``/.envgen``.  Installer writes nothing that depends on another
package (entry-point scripts, RECORD and INSTALLER belong to one wheel; a
path two wheels both install fails the build, as installer's own refusal
to overwrite fails a whole-tree install).

**Modes and times.**  A unit's files hold their final, read-only modes
(0444, or 0555 when the owner-execute bit was set: :func:`tree.final_mode`)
and the mtime of the snapshot date of the build that made the unit.  A tree
hard-links a unit's files when its own snapshot date is that mtime, and
copies them otherwise (or where a link cannot be made, e.g. across
filesystems), so nothing ever changes a shared inode: :func:`tree.settle`
publishes the tree without touching them.  Hard links a .deb makes between
its own files are kept, links or copies alike.

**Atomic.**  A unit is made in the store's ``tmp/`` and renamed into
``units/`` whole, after its listing and meta.json are written: a reader
sees a whole unit or none, an interrupted build leaves only ``tmp/``
(cleaned by the next idle session), and of two builds making one unit the
second to finish keeps its own copy for its tree and drops it.  ``gc`` keeps
the units that some tree's meta.json lists (:meth:`envgen.snapshot.Store.gc`).
"""

from __future__ import annotations

import base64
import csv
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats, layout
from ..errors import BuildError, FormatError
from ..fsutil import canonical_json, file_sha256, fsync_dir, remove_tree
from ..lock import pylock
from ..snapshot import Store
from . import debs
from .tree import final_mode, parse_line, settle

# Bump when what a unit holds changes for the same inputs: every unit is then made again.
UNITS_VERSION = 1


def unit_key(inputs: dict) -> str:
    return hashlib.sha256(canonical_json({"units-version": UNITS_VERSION, **inputs})).hexdigest()


@dataclass
class Unit:
    """One unit a tree is made of: where its files are, once made or found."""

    key: str
    kind: str                      # deb, wheel, bytecode
    name: str                      # what it is, for messages: a package name or wheel file name
    inputs: dict
    source: Path | None = None     # the .deb or wheel file it is made from
    cost: int = 0                  # a size, to start the largest first
    path: Path | None = None       # the unit directory (units/KEY, or a staging copy)
    lines: list[str] = field(default_factory=list)
    epoch: int = 0
    built: bool = False


def interpreter_debs(lock: pylock.Lock) -> list[str]:
    """sha256s of the .debs of the lock's interpreter (the binary, the core and standard library modules):
    what a pyc is compiled by."""
    x = lock.python
    names = {f"python{x}", f"python{x}-minimal", f"libpython{x}", f"libpython{x}-minimal", f"libpython{x}-stdlib"}
    shas = sorted(d.sha256 for d in lock.debian.packages if d.role == "runtime" and d.name in names)
    if not shas:
        raise BuildError(f"the lock has no python{x} .debs; re-lock the spec")
    return shas


def compiler_inputs(lock: pylock.Lock, assembler: str) -> dict:
    """What bytecode and installed files are a function of besides the package itself."""
    return {"python": lock.python, "interpreter": interpreter_debs(lock), "assembler": assembler,
            "prefix": layout.ENV_PREFIX, "exclude": list(layout.COMPILE_EXCLUDE)}


def deb_unit(d: pylock.DebPackage, path: Path) -> Unit:
    return Unit(unit_key({"unit": "deb", "deb": d.sha256}), "deb", d.name, {"unit": "deb", "deb": d.sha256},
                source=path, cost=d.size)


def wheel_unit(filename: str, sha: str, path: Path, installer_sha: str, base: dict) -> Unit:
    inputs = {"unit": "wheel", "wheel": sha, "installer": installer_sha, **base}
    return Unit(unit_key(inputs), "wheel", filename, inputs, source=path, cost=path.stat().st_size)


def bytecode_unit(sources: list[str], cost: int, base: dict) -> Unit:
    inputs = {"unit": "bytecode", "sources": hashlib.sha256("".join(s + "\n" for s in sources).encode()).hexdigest(),
              **base}
    return Unit(unit_key(inputs), "bytecode", f"python{base['python']} standard library bytecode", inputs, cost=cost)


# --------------------------------------------------------------------------- finding, sealing, publishing


def find(store: Store, unit: Unit) -> bool:
    """Point *unit* at its copy in the store, if a whole, readable one is there."""
    d = store.paths.unit(unit.key)
    try:
        meta = formats.load_json("envgen-unit", (d / "meta.json").read_bytes(), str(d / "meta.json"))
        lines = (d / "listing.txt").read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        epoch = int(meta["epoch"])
    except (OSError, FormatError, KeyError, ValueError, TypeError):
        return False
    if meta.get("key") != unit.key or not (d / "root").is_dir():
        return False
    unit.path, unit.lines, unit.epoch = d, lines, epoch
    return True


def damage(store: Store, key: str) -> str | None:
    """Why the unit *key* of *store* is not what it was published as (its files against its listing: every
    path, mode and sha256, and the mtime of its files), or None when it is whole.  A tree's files are its
    units' files, so a ``chmod`` or an edit inside a tree shows here."""
    from .tree import listing, walk

    unit = Unit(key, "", key, {})
    if not find(store, unit):
        return "unreadable (no whole meta.json and listing)"
    ns = unit.epoch * 1_000_000_000
    root = store.paths.unit(key) / "root"
    entries = walk(root)
    for rel, st in entries:
        if stat.S_ISREG(st.st_mode) and st.st_mtime_ns != ns:
            return f"/{rel}: mtime changed"
    differ = sorted(set(listing(root, entries=entries)) ^ set(unit.lines))
    return f"{len(differ)} listing lines differ, first {differ[0][:160]!r}" if differ else None


def seal(work: Path, unit: Unit, epoch: int, known: dict[tuple[int, int], str] | None = None) -> None:
    """Give the files under *work*/root their final modes and mtime *epoch*, and write the listing and meta
    (*known*: the sha256s of files already in their final mode and time, by inode, not read again)."""
    root = work / "root"
    root.mkdir(exist_ok=True)
    lines, _ = settle(root, epoch, known, root_mode=0o555)
    (work / "listing.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8",
                                      errors="surrogateescape")
    meta = {**formats.header("envgen-unit"), "key": unit.key, "unit": unit.kind, "name": unit.name,
            "inputs": unit.inputs, "epoch": epoch, "files": len(lines)}
    (work / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    for p, mode in ((work / "listing.txt", 0o644), (work / "meta.json", 0o644), (work, 0o755)):
        os.chmod(p, mode)  # as trees/KEY: readable by whoever shares the store, whatever the umask
    unit.path, unit.lines, unit.epoch, unit.built = work, lines, epoch, True


def publish(store: Store, unit: Unit) -> None:
    """Move a sealed unit from staging into units/KEY in one rename.  If the store has the unit already
    (another build got there first, or ``--force`` made it again), this tree keeps using its own copy,
    which goes with the staging, once its listing is found equal to the store's unit's: a unit made
    again that differs is an error (a package whose install is not reproducible, or a damaged unit)."""
    assert unit.path is not None
    dest = store.paths.unit(unit.key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not (dest / "meta.json").is_file():
        remove_tree(dest)  # not a unit envgen published (published units are whole): never used by a tree
    try:
        os.rename(unit.path, dest)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        lost = True
    else:
        lost = False
    if lost:
        # made again (--force, or a build racing this one): it must be the store's unit, entry for entry
        theirs = Unit(unit.key, unit.kind, unit.name, unit.inputs)
        if find(store, theirs) and theirs.lines != unit.lines:
            differ = sorted(set(unit.lines) ^ set(theirs.lines))
            raise BuildError(f"{unit.name}: made again, it differs from the store's unit {unit.key[:16]}… "
                             f"in {len(differ)} listing lines, first {differ[0][:160]!r}",
                             hint=f"a non-reproducible package or a damaged unit; remove {dest} to make it anew")
        return
    fsync_dir(dest.parent)
    unit.path = dest


def make_deb_units(store: Store, units: list[Unit], epoch: int, jobs: int) -> None:
    """Unpack each .deb of *units* into its own unit and publish it: *jobs* processes at once (unpacking is
    mostly Python; the units do not depend on how many ran)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    todo = sorted(units, key=lambda u: -u.cost)
    workers = max(1, min(jobs, len(todo)))
    if workers > 1:
        try:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        except OSError:  # no /dev/shm for its semaphores (a bare root, as VERIFY.sh's): threads instead
            pass
        else:
            with pool:
                for u, (path, lines) in zip(todo, pool.map(_deb_unit_in_child,
                                                           [(store.root, u, epoch) for u in todo]), strict=True):
                    u.path, u.lines, u.epoch, u.built = path, lines, epoch, True
            return
    with ThreadPoolExecutor(max_workers=workers) as threads:
        list(threads.map(lambda u: _make_deb_unit(store, u, epoch), todo))


def _deb_unit_in_child(args: tuple[Path, Unit, int]) -> tuple[Path, list[str]]:
    root, unit, epoch = args
    _make_deb_unit(Store(root, create=False), unit, epoch)
    assert unit.path is not None
    return unit.path, unit.lines


def _make_deb_unit(store: Store, unit: Unit, epoch: int) -> None:
    assert unit.source is not None
    data = unit.source.read_bytes()
    if hashlib.sha256(data).hexdigest() != unit.inputs["deb"]:
        raise BuildError(f"store object corrupted: {unit.name}'s .deb no longer hashes to "
                         f"{unit.inputs['deb'][:16]}…", hint="run `envgen store verify --repair`, then "
                                                             "`envgen snapshot SPEC` again")
    work = store.staging_dir("unit-")
    try:
        (work / "root").mkdir()
        debs.extract_deb(io.BytesIO(data), work / "root", unit.name)
        seal(work, unit, epoch)
        publish(store, unit)
    except BaseException:
        if work.exists():  # not published: nothing of it stays behind (on a full disk least of all)
            remove_tree(work)
        raise


def dist_info_of(wheel: Path) -> str:
    """The ``NAME-VERSION.dist-info`` directory a wheel installs (where installer writes its RECORD)."""
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/", 1)[0] for n in zf.namelist() if n.endswith(".dist-info/WHEEL") and n.count("/") == 1}
    if len(tops) != 1:
        raise BuildError(f"{wheel.name}: not a wheel (it has {len(tops)} .dist-info/WHEEL files)")
    return tops.pop()


def wheel_files(tree: Path, python: str, dist_info: str) -> tuple[list[str], list[str], dict[str, str]]:
    """What installing a wheel put into the tree, relative to the tree, in two parts: the files of its
    RECORD (RECORD included) but pycs, final once installer is done; and the pycs its bytecode can be
    (any its RECORD lists, and one per .py), which compileall writes afterwards, some by replacing a
    pyc the wheel ships (numpy's RECORD lists one): the caller keeps the ones the tree has once
    compileall is done.  Also {path: sha256} of the first part, from the RECORD installer wrote as it
    wrote each file, so that they need not be read again."""
    site = layout.site_packages(python).lstrip("/")
    record = tree / site / dist_info / "RECORD"
    try:
        with open(record, newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except OSError as exc:
        raise BuildError(f"installing {dist_info} left no RECORD: {exc.strerror}") from None
    files = set()
    pycs = set()
    hashes = {}
    for row in rows:
        rel = os.path.normpath(f"{site}/{row[0]}")
        if rel.startswith("../") or rel.startswith("/"):
            raise BuildError(f"{dist_info}/RECORD names {row[0]}, outside the tree")
        if rel.endswith(".pyc"):
            pycs.add(rel)
            continue
        files.add(rel)
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = row[1][len("sha256="):]
            raw = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
            if len(raw) == 32:
                hashes[rel] = raw.hex()
        if rel.endswith(".py"):
            pycs.add(pyc_of(rel, python))
    return sorted(files), sorted(pycs), hashes


def pyc_of(source: str, python: str) -> str:
    """Where compileall writes the bytecode of *source* (a .py path) for CPython ``3.X``."""
    d, name = os.path.split(source)
    return f"{d}/__pycache__/{name[:-3]}.cpython-{python.replace('.', '')}.pyc"


def stdlib_bytecode_files(tree: Path, python: str) -> list[str]:
    """The pycs under /usr/lib/python3.X of the tree (the Debian packages ship none: all are compiled)."""
    out = []
    top = str(tree / f"usr/lib/python{python}")
    base = len(str(tree)) + 1
    for dirpath, _, filenames in os.walk(top):
        if os.path.basename(dirpath) == "__pycache__":
            out += [os.path.join(dirpath, n)[base:] for n in filenames if n.endswith(".pyc")]
    return sorted(out)


class Harvest:
    """Makes *unit* of files just installed into the tree, as they become final: :meth:`take` hard-links
    them into a unit in staging (a wheel's files once installer has written them, its pycs once their
    compileall chunk is done), and :meth:`publish` seals the unit (its final modes and times, on the
    tree's inodes too) and publishes it.  The tree keeps the files, now shared with the unit, and the
    linker learns their sha256s."""

    def __init__(self, store: Store, tree: Path, unit: Unit, epoch: int):
        self.store, self.tree, self.unit, self.epoch = store, tree, unit, epoch
        self.work: Path | None = None  # made by the first take
        self.made: set[Path] = set()
        self.taken: set[str] = set()
        self.linked: dict[str, tuple[int, int]] = {}
        self.hashes: dict[str, str] = {}

    def take(self, files: list[str], read: bool = False) -> None:
        """Hard-link the tree's *files* (paths relative to it; each final from now on) into the unit;
        with *read*, hash them now (while they are in the page cache) rather than when sealing."""
        if self.work is None:
            # the unit's staging copy from now on: a build that fails removes it (drop_staged_units)
            self.work = self.unit.path = self.store.staging_dir("unit-")
        root = self.work / "root"
        ns = self.epoch * 1_000_000_000
        for rel in files:
            # final mode and time set through the tree's own path, the one settle reads later (a FUSE
            # filesystem may cache one path's attributes while the inode changes through another)
            src = self.tree / rel
            st = os.lstat(src)
            if stat.S_IMODE(st.st_mode) != final_mode(st):
                os.chmod(src, final_mode(st))
            os.utime(src, ns=(ns, ns))
            dst = root / rel
            if dst.parent not in self.made:
                dst.parent.mkdir(parents=True, exist_ok=True)
                self.made.add(dst.parent)
            self.taken.add(rel)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)  # the tree's file stays its own (settle then hashes it)
                continue
            self.linked[rel] = (st.st_dev, st.st_ino)  # one inode: the tree's file and the unit's
            if read:
                self.hashes[rel] = file_sha256(src)

    def publish(self, linker: Linker, hashes: dict[str, str] | None = None) -> None:
        """Seal and publish the unit.  *hashes* ({path: sha256}, from the RECORD installer wrote while
        writing them: :func:`wheel_files`) spares reading those files again; the others (RECORD itself,
        and any pyc not read when taken) are hashed."""
        if self.work is None:
            self.take([])
        assert self.work is not None
        every = {**(hashes or {}), **self.hashes}
        known = {self.linked[rel]: sha for rel, sha in every.items() if rel in self.linked}
        seal(self.work, self.unit, self.epoch, known)
        shas = {e.path: e.sha256 for e in map(parse_line, self.unit.lines) if e.kind == "f"}
        for rel, inode in self.linked.items():
            linker.known[inode] = shas[rel]
        publish(self.store, self.unit)


class Harvester:
    """The units one run of the assembler's ``units`` step makes, taken from the tree as the step says
    their files are final: the files of each group of wheels once the group is in
    (:meth:`installed`), each chunk's pycs once compileall has done it (:meth:`compiled`), and then
    whatever is left, before each unit is sealed and published (:meth:`publish`).  What ends in a unit
    does not depend on when it was taken: the late pass takes every pyc the tree has."""

    def __init__(self, store: Store, tree: Path, python: str, epoch: int, wheels: list[Unit],
                 stdlib: Unit | None, jobs: int):
        self.tree, self.python, self.wheels, self.stdlib, self.jobs = tree, python, wheels, stdlib, jobs
        self.harvests = {u.key: Harvest(store, tree, u, epoch) for u in [*wheels, *([stdlib] if stdlib else [])]}
        self.listed: dict[str, tuple[list[str], list[str], dict[str, str]]] = {}
        self.owners: dict[str, list[str]] = {}  # a pyc -> the units it goes into (two wheels may ship one .py)
        self.by_name = {u.name: u for u in wheels}
        self.stdlib_top = f"usr/lib/python{python}/"

    def _each(self, fn, units: list[Unit]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:  # system calls mostly: threads overlap
            list(pool.map(fn, sorted(units, key=lambda u: -u.cost)))

    def installed(self, names: list[str]) -> None:
        """These wheels (file names) are in: take their files (nothing writes them from now on; compileall
        writes only their pycs)."""
        units = [self.by_name[n] for n in names]

        def one(u: Unit) -> None:
            assert u.source is not None
            self.listed[u.key] = wheel_files(self.tree, self.python, dist_info_of(u.source))
            self.harvests[u.key].take(self.listed[u.key][0])

        self._each(one, units)
        for u in units:
            for pyc in self.listed[u.key][1]:
                self.owners.setdefault(pyc, []).append(u.key)

    def compiled(self, sources: list[str]) -> None:
        """compileall is done with these .py files (in-tree paths): take their pycs, and read them."""
        todo: dict[str, list[str]] = {}
        for src in sources:
            rel = src.lstrip("/")
            pyc = pyc_of(rel, self.python)
            keys = self.owners.get(pyc, [])
            if not keys and self.stdlib is not None and rel.startswith(self.stdlib_top):
                keys = [self.stdlib.key]
            for key in keys:
                todo.setdefault(key, []).append(pyc)
        units = [self.harvests[k].unit for k in todo]
        self._each(lambda u: self.harvests[u.key].take(
            [p for p in todo[u.key] if p not in self.harvests[u.key].taken and os.path.lexists(self.tree / p)],
            read=True), units)

    def publish(self, linker: Linker) -> None:
        """The step has ended: take the pycs not taken yet, then seal and publish every unit."""
        def one(u: Unit) -> None:
            h = self.harvests[u.key]
            if u is self.stdlib:
                pycs, hashes = stdlib_bytecode_files(self.tree, self.python), None
            else:
                _, pycs, hashes = self.listed[u.key]
            h.take([p for p in pycs if p not in h.taken and os.path.lexists(self.tree / p)])
            h.publish(linker, hashes)

        self._each(one, [h.unit for h in self.harvests.values()])


# --------------------------------------------------------------------------- assembling a tree from units


class Linker:
    """Places units into a tree: files hard-linked (or copied), links and directories made afresh.

    ``known`` maps the inode of every file placed from a unit to its sha256
    (from the unit's listing), for :func:`tree.settle`.
    """

    def __init__(self, root: Path, epoch: int):
        self.root = Path(root)
        self.epoch = epoch
        self.known: dict[tuple[int, int], str] = {}
        self.copies: dict[tuple[int, int], tuple[Path, int]] = {}  # unit inode -> (its copy in the tree, copy inode)
        self.owner: dict[str, str] = {}
        self.claims: dict[str, tuple[str, int]] = {}  # path -> (sha256, mode) of the wheel or bytecode unit's file
        self.linked = 0
        self.copied = 0
        self._lock = threading.Lock()  # wheel and bytecode units are placed side by side (add_exclusive)
        self.placer = debs.Placer(self.root)  # one for the tree: it remembers the directories made
        self.dirs: set[str] = set()  # directories a wheel or bytecode unit made or found (no mkdir again)

    def add(self, unit: Unit, *, dpkg: bool) -> None:
        """Place *unit*: with *dpkg*, by the rules of unpacking a .deb (a later package replaces a file);
        otherwise a path the tree already holds is a conflict, as for installer."""
        assert unit.path is not None
        if not dpkg:
            return self._add_exclusive(unit)
        src_root = unit.path / "root"
        place = self.placer
        link = unit.epoch == self.epoch
        for line in unit.lines:
            e = parse_line(line)
            try:
                if e.kind == "d":
                    place.directory(e.path)
                    continue
                target = place.prepare(e.path, unit.name)
                if e.kind == "l":
                    os.symlink(e.target, target)
                elif e.kind == "f":
                    self._file(src_root / e.path, target, e.sha256, int(e.mode, 8), link)
            except OSError as exc:
                raise BuildError(f"placing {unit.name} into the tree: /{e.path}: {exc.strerror or exc}") from None

    def add_exclusive(self, units: list[Unit], jobs: int) -> None:
        """Place wheel and bytecode *units* side by side, *jobs* at once: they share no path but
        directories, and placing is mkdir and link calls that wait on the disk far more than on the CPU
        (4 threads make a tree's 1,800 directories 3-4 times faster here).  A path two of them install is
        a conflict (or the same bytes and mode, no conflict) whichever comes first."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(self._add_exclusive, units))  # the first failure is raised

    def _add_exclusive(self, unit: Unit) -> None:
        """Place a wheel or bytecode unit, whose paths no other package of the tree may hold (the fast path:
        a tree links some 10,000 such files; os.link and os.symlink refuse an existing path themselves)."""
        assert unit.path is not None
        src_root = f"{unit.path}/root/"
        root = f"{self.root}/"
        link = unit.epoch == self.epoch
        for line in unit.lines:
            kind, mode, rest = line.split(" ", 2)
            if kind == "d":
                if rest in self.dirs:
                    continue
                try:
                    os.mkdir(root + rest)
                except FileExistsError:
                    if not os.path.isdir(root + rest):
                        self._conflict(unit, rest)
                self.dirs.add(rest)
                continue
            if kind == "l":
                path, target = rest.split(" -> ", 1)
            else:
                path, _, target = rest.rpartition(" ")  # target: the sha256
            with self._lock:  # claimed before it is made: another unit's claim is seen whole
                claim = (target, int(mode, 8))
                first = path not in self.claims
                if first:
                    self.claims[path] = claim
                    self.owner[path] = unit.name
            if not first:
                if kind == "f" and self.claims[path] == claim:
                    continue  # the same bytes and mode from two units (nvidia/__init__.py): no conflict
                self._conflict(unit, path)
            try:
                if kind == "l":
                    os.symlink(target, root + path)
                elif kind == "f":
                    if link:
                        try:
                            os.link(src_root + path, root + path)
                        except OSError as exc:  # an existing path (EEXIST) is a conflict, raised on
                            if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EACCES):
                                raise
                            self._file(Path(src_root + path), Path(root + path), target, int(mode, 8), False)
                        else:
                            st = os.lstat(root + path)  # the inode as the tree's path shows it, as settle sees it
                            with self._lock:
                                self.known[(st.st_dev, st.st_ino)] = target
                                self.linked += 1
                    else:
                        if os.path.lexists(root + path):
                            if self._same_file(root + path, target, int(mode, 8)):
                                continue
                            self._conflict(unit, path)
                        self._file(Path(src_root + path), Path(root + path), target, int(mode, 8), False)
            except FileExistsError:
                if not (kind == "f" and self._same_file(root + path, target, int(mode, 8))):
                    self._conflict(unit, path)
            except OSError as exc:
                raise BuildError(f"placing {unit.name} into the tree: /{path}: {exc.strerror or exc}") from None

    @staticmethod
    def _same_file(path: str, sha: str, mode: int) -> bool:
        """Whether the tree's *path* is a regular file with these bytes and this mode: a path two wheels
        install alike (the NVIDIA CUDA wheels' empty ``nvidia/__init__.py``) is no conflict, as for the
        whole-tree install (assemble.py)."""
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
                return False
            with open(path, "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest() == sha
        except OSError:
            return False

    def _conflict(self, unit: Unit, path: str) -> None:
        other = self.owner.get(path)
        if other is None or other == unit.name:  # the path was in the tree before any unit claimed it
            other = "the env's skeleton"
        raise BuildError(f"{unit.name} and {other} both install /{path}")

    def _file(self, src: Path, target: Path, sha: str, mode: int, link: bool) -> None:
        if link:
            try:
                os.link(src, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EACCES):
                    raise
            else:
                st = os.lstat(target)  # the inode as the tree's path shows it, as settle will see it
                with self._lock:
                    self.known[(st.st_dev, st.st_ino)] = sha
                    self.linked += 1
                return
        st = os.lstat(src)
        first = self.copies.get((st.st_dev, st.st_ino))
        if first is not None:  # a file the unit links twice: linked twice in the tree too
            try:
                if os.lstat(first[0]).st_ino == first[1]:
                    os.link(first[0], target)
                    return
            except FileNotFoundError:
                pass
        shutil.copyfile(src, target)
        os.chmod(target, mode)
        os.utime(target, (self.epoch, self.epoch))
        nst = os.lstat(target)
        with self._lock:
            self.known[(nst.st_dev, nst.st_ino)] = sha
            self.copies[(st.st_dev, st.st_ino)] = (target, nst.st_ino)
            self.copied += 1


def python_sources(root: Path, top: str, known: dict[tuple[int, int], str]) -> tuple[list[str], int]:
    """Every .py entry under *top* in the tree at *root*, as ``path sha256`` or ``path -> target`` lines
    (sorted), and their total size: what the standard library's bytecode is a function of."""
    out = []
    size = 0
    base = len(str(root))
    for dirpath, dirnames, filenames in os.walk(str(root) + top):
        dirnames.sort()
        for name in filenames:
            if not name.endswith(".py"):
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if os.path.islink(full):
                out.append(f"{full[base:]} -> {os.readlink(full)}")
                continue
            sha = known.get((st.st_dev, st.st_ino)) or file_sha256(full)
            out.append(f"{full[base:]} {sha}")
            size += st.st_size
    out.sort(key=lambda s: s.encode("utf-8", "surrogateescape"))
    return out, size


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
