"""Install units (envgen/builders/units.py): one package installed once, hard-linked into the trees that use it.

The first tests need no network: settling a tree, placing units by dpkg's
rules or installer's, copies where a link cannot serve, gc of units.  The
rest (marked network + slow) build the tiny spec for real: from units and
by the whole-tree install (one digest), a re-pinned leaf (one unit made, the
rest reused), gc while either of two trees lives, and builds that race or
are killed half-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_debs import make_deb

from envgen.builders import debs
from envgen.builders.tree import canonicalize, clamp_mtimes, digest_of, listing, make_readonly, settle
from envgen.builders.units import Linker, Unit, find, make_deb_units, unit_key
from envgen.errors import BuildError, StoreError
from envgen.fsutil import remove_tree
from envgen.snapshot import Store
from helpers import REPO, run_envgen

EPOCH = 1746662400  # 2025-05-08T00:00:00Z, the tiny spec's snapshot date


def _odd_tree(root: Path) -> None:
    """A tree with modes a umask or a package might leave: 0700 dirs, 0600 and 0775 files, links, a hard link."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_text("f\n")
    os.chmod(root / "a" / "f", 0o600)
    (root / "a" / "b" / "x").write_text("#!/bin/sh\n")
    os.chmod(root / "a" / "b" / "x", 0o4775)
    os.link(root / "a" / "f", root / "a" / "hard")
    os.symlink("b/x", root / "a" / "link")
    os.symlink("/nowhere", root / "dangling")
    os.chmod(root / "a" / "b", 0o700)


def _mtimes(root: Path) -> dict[str, int]:
    return {os.path.relpath(os.path.join(d, n), root): int(os.lstat(os.path.join(d, n)).st_mtime)
            for d, ds, fs in os.walk(root) for n in ds + fs}


def test_settle_is_canonicalize_clamp_and_readonly_in_one_pass(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for r in (old, new):
        r.mkdir()
        _odd_tree(r)
    canonicalize(old)
    clamp_mtimes(old, EPOCH)
    make_readonly(old)
    lines, size = settle(new, EPOCH)
    assert lines == listing(old) == listing(new)
    assert digest_of(lines) == digest_of(listing(old))
    assert _mtimes(new) == _mtimes(old) and set(_mtimes(new).values()) == {EPOCH}
    assert stat.S_IMODE(os.stat(new).st_mode) == stat.S_IMODE(os.stat(old).st_mode) == 0o755
    assert size == sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(old) for f in fs)
    assert "f 0555 a/b/x" in "\n".join(lines) and "f 0444 a/f" in "\n".join(lines)


def test_settle_never_changes_a_shared_inode(tmp_path):
    unit = tmp_path / "unit.txt"
    unit.write_text("shared\n")
    os.chmod(unit, 0o444)
    os.utime(unit, (EPOCH, EPOCH))
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    os.link(unit, tree / "d" / "f")
    st = os.stat(unit)
    known = {(st.st_dev, st.st_ino): "0" * 64}  # a sha256 settle must take as given, not read
    lines, _ = settle(tree, EPOCH, known)
    assert f"f 0444 d/f {'0' * 64}" in lines
    assert os.stat(unit).st_ctime_ns == st.st_ctime_ns  # neither chmod nor utime reached it
    os.chmod(unit, 0o644)  # a damaged unit: an error, never repaired through the shared inode
    with pytest.raises(BuildError, match="shared with an install unit"):
        settle(tree, EPOCH, {(st.st_dev, st.st_ino): "0" * 64})
    assert stat.S_IMODE(os.stat(unit).st_mode) == 0o644


def _deb_unit(store: Store, tmp_path: Path, name: str, entries) -> Unit:
    data = make_deb(entries)
    path = tmp_path / f"{name}.deb"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    inputs = {"unit": "deb", "deb": sha}
    return Unit(unit_key(inputs), "deb", name, inputs, source=path, cost=len(data))


DEB_A = [("./usr/", "d", "", 0o755), ("./usr/bin/", "d", "", 0o755), ("./usr/bin/tool", "f", "v1\n", 0o755),
         ("./usr/bin/tool2", "h", "./usr/bin/tool", 0o755), ("./usr/share/doc/a", "f", "a\n", 0o600),
         ("./usr/lib/", "d", "", 0o700), ("./usr/lib/liba.so", "l", "liba.so.1", 0o777)]
DEB_B = [("./usr/bin/tool", "f", "v2 replaces v1\n", 0o644), ("./usr/lib/", "d", "", 0o755),
         ("./usr/lib/liba.so.1", "f", "elf\n", 0o644)]


def test_deb_units_merge_as_the_debs_unpack(tmp_path):
    """.deb units placed in order give the tree unpacking the .debs gives (a later package replaces a file)."""
    store = Store(tmp_path / "store")
    units = [_deb_unit(store, tmp_path, "a", DEB_A), _deb_unit(store, tmp_path, "b", DEB_B)]
    direct = tmp_path / "direct"
    direct.mkdir()
    for u in units:
        assert u.source is not None
        debs.extract_deb(open(u.source, "rb"), direct, u.name)
    with store.session():
        make_deb_units(store, units, EPOCH, jobs=2)
    assert all(u.path == store.paths.unit(u.key) and u.built for u in units)
    again = [_deb_unit(store, tmp_path, "a", DEB_A), _deb_unit(store, tmp_path, "b", DEB_B)]
    assert all(find(store, u) and not u.built for u in again)  # published whole: found by key
    tree = tmp_path / "tree"
    tree.mkdir()
    linker = Linker(tree, EPOCH)
    for u in again:
        linker.add(u, dpkg=True)
    lines, _ = settle(tree, EPOCH, linker.known)
    settle(direct, EPOCH)
    assert lines == listing(direct)
    assert linker.linked == 5 and linker.copied == 0
    # the replaced file is b's inode; a's hard-linked pair is still one inode, shared with a's unit
    assert os.path.samestat(os.stat(tree / "usr/bin/tool"), os.stat(again[1].path / "root/usr/bin/tool"))
    assert os.path.samestat(os.stat(tree / "usr/bin/tool2"), os.stat(again[0].path / "root/usr/bin/tool"))
    for u in again:  # units are read-only, their files at the final modes and the snapshot date
        for line in u.lines:
            kind, _, rest = line.split(" ", 2)
            p = u.path / "root" / rest.split(" ")[0]
            assert int(os.lstat(p).st_mtime) == EPOCH and (kind == "l" or not os.lstat(p).st_mode & 0o222)


def test_a_unit_made_again_must_equal_the_stores(tmp_path):
    """--force (or a racing build) makes a unit the store has: the same listing, or a one-line error."""
    store = Store(tmp_path / "store")
    with store.session():
        make_deb_units(store, [_deb_unit(store, tmp_path, "a", DEB_A)], EPOCH, jobs=1)
        again = _deb_unit(store, tmp_path, "a", DEB_A)
        make_deb_units(store, [again], EPOCH, jobs=1)  # equal: this copy is kept aside, the store's stays
        assert again.path is not None and again.path.parent == store.tmp
        listing_txt = store.paths.unit(again.key) / "listing.txt"
        listing_txt.write_text(listing_txt.read_text().replace("f 0555 usr/bin/tool ", "f 0444 usr/bin/tool "))
        with pytest.raises(BuildError, match="made again, it differs from the store's unit"):
            make_deb_units(store, [_deb_unit(store, tmp_path, "a", DEB_A)], EPOCH, jobs=1)


def test_a_unit_of_another_snapshot_date_is_copied_keeping_its_hard_links(tmp_path):
    store = Store(tmp_path / "store")
    u = _deb_unit(store, tmp_path, "a", DEB_A)
    with store.session():
        make_deb_units(store, [u], EPOCH, jobs=1)
    tree = tmp_path / "tree"
    tree.mkdir()
    later = EPOCH + 86400
    linker = Linker(tree, later)
    linker.add(u, dpkg=True)
    lines, _ = settle(tree, later, linker.known)
    assert linker.linked == 0 and linker.copied == 2
    unit_file = u.path / "root/usr/bin/tool"
    assert not os.path.samestat(os.stat(tree / "usr/bin/tool"), os.stat(unit_file))
    assert os.path.samestat(os.stat(tree / "usr/bin/tool"), os.stat(tree / "usr/bin/tool2"))
    assert int(os.stat(unit_file).st_mtime) == EPOCH and set(_mtimes(tree).values()) == {later}
    assert "f 0555 usr/bin/tool " + hashlib.sha256(b"v1\n").hexdigest() in lines


def test_two_packages_installing_one_path_fail_the_build(tmp_path):
    store = Store(tmp_path / "store")
    a = _deb_unit(store, tmp_path, "a", DEB_A)
    b = _deb_unit(store, tmp_path, "b", DEB_B)
    with store.session():
        make_deb_units(store, [a, b], EPOCH, jobs=1)
    tree = tmp_path / "tree"
    tree.mkdir()
    linker = Linker(tree, EPOCH)
    linker.add(a, dpkg=False)
    with pytest.raises(BuildError, match="b and a both install /usr/bin/tool"):
        linker.add(b, dpkg=False)


@pytest.mark.parametrize("later", [0, 86400], ids=["linked", "copied"])
def test_two_packages_installing_one_path_alike_do_not_conflict(tmp_path, later):
    """As the NVIDIA CUDA wheels each install the same empty nvidia/__init__.py: same bytes, same mode."""
    store = Store(tmp_path / "store")
    a = _deb_unit(store, tmp_path, "a", DEB_A)
    c = _deb_unit(store, tmp_path, "c", [("./usr/", "d", "", 0o755), ("./usr/bin/", "d", "", 0o755),
                                         ("./usr/bin/tool", "f", "v1\n", 0o755)])
    with store.session():
        make_deb_units(store, [a, c], EPOCH, jobs=1)
    tree = tmp_path / "tree"
    tree.mkdir()
    linker = Linker(tree, EPOCH + later)
    linker.add(a, dpkg=False)
    linker.add(c, dpkg=False)
    assert (tree / "usr/bin/tool").read_bytes() == b"v1\n" and linker.owner["usr/bin/tool"] == "a"
    (tree / "usr/bin/tool").unlink()  # the same bytes with another mode: a conflict again
    (tree / "usr/bin/tool").write_bytes(b"v1\n")
    os.chmod(tree / "usr/bin/tool", 0o444)
    with pytest.raises(BuildError, match="c and the env's skeleton both install /usr/bin/tool"):
        Linker(tree, EPOCH + later).add(c, dpkg=False)


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_harvest_takes_a_wheels_files_before_its_bytecode_is_compiled(tmp_path):
    """A wheel's unit takes the files installer wrote as soon as it is done (with their sha256s from
    the RECORD it wrote), and the pycs once compileall is done: compileall replaces any pyc the wheel
    ships (numpy's RECORD lists one) by a new file, so a pyc is taken late, and read.  The unit's
    listing is what its files hold, and the tree's files are the unit's."""
    from envgen.builders.units import Harvest, wheel_files

    store = Store(tmp_path / "store")
    tree = tmp_path / "tree"
    site = "opt/env/lib/python3.11/site-packages"
    shipped = f"{site}/pkg/__pycache__/__init__.cpython-311.pyc"
    files = {f"{site}/pkg/__init__.py": b"X = 1\n", f"{site}/pkg/data.bin": b"\0" * 5000,
             f"{site}/pkg/skipped.py": b"print 'python 2'\n", shipped: b"shipped in the wheel"}
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    record = tree / site / "pkg-1.0.dist-info" / "RECORD"
    record.parent.mkdir()
    record.write_text(f"pkg/__init__.py,sha256={_b64(b'X = 1' + bytes([10]))},6\n"
                      f"pkg/data.bin,sha256={_b64(bytes(5000))},5000\n"
                      f"pkg/skipped.py,sha256={_b64(files[f'{site}/pkg/skipped.py'])},17\n"
                      f"pkg/__pycache__/__init__.cpython-311.pyc,sha256={_b64(b'shipped in the wheel')},20\n"
                      "pkg-1.0.dist-info/RECORD,,\n")
    installed, pycs, hashes = wheel_files(tree, "3.11", "pkg-1.0.dist-info")
    assert installed == sorted([f"{site}/pkg/__init__.py", f"{site}/pkg/data.bin", f"{site}/pkg/skipped.py",
                                str(record.relative_to(tree))])
    assert pycs == [shipped, f"{site}/pkg/__pycache__/skipped.cpython-311.pyc"]
    assert hashes == {f"{site}/pkg/__init__.py": hashlib.sha256(b"X = 1\n").hexdigest(),
                      f"{site}/pkg/data.bin": hashlib.sha256(bytes(5000)).hexdigest(),
                      f"{site}/pkg/skipped.py": hashlib.sha256(files[f"{site}/pkg/skipped.py"]).hexdigest()}
    unit = Unit("k" * 64, "wheel", "pkg-1.0-py3-none-any.whl", {})
    linker = Linker(tree, EPOCH)
    with store.session():
        harvest = Harvest(store, tree, unit, EPOCH)
        harvest.take(installed)
        # compileall, meanwhile: a new file over the shipped pyc, none for the file that does not compile
        (tree / (shipped + ".tmp")).write_bytes(b"compiled by the assembler")
        os.replace(tree / (shipped + ".tmp"), tree / shipped)
        harvest.take([p for p in pycs if os.path.lexists(tree / p)])
        harvest.publish(linker, hashes)
    assert unit.path == store.paths.unit(unit.key)
    assert (unit.path / "listing.txt").read_text().splitlines() == listing(unit.path / "root")
    assert f"f 0444 {shipped} {hashlib.sha256(b'compiled by the assembler').hexdigest()}" in unit.lines
    assert not any("skipped.cpython" in line for line in unit.lines)
    for rel in [*installed, shipped]:
        assert os.path.samefile(tree / rel, unit.path / "root" / rel)
    assert sorted(linker.known.values()) == sorted(hashlib.sha256(d).hexdigest() for d in [
        *(v for k, v in files.items() if k != shipped), b"compiled by the assembler", record.read_bytes()])


def test_units_placed_side_by_side_meet_a_shared_path_as_placed_one_by_one(tmp_path):
    """Linker.add_exclusive (wheel and bytecode units in threads): a path two units install alike is no
    conflict, a path they install differently is, whichever unit comes first."""
    store = Store(tmp_path / "store")
    a = _deb_unit(store, tmp_path, "a", DEB_A)
    b = _deb_unit(store, tmp_path, "b", DEB_B)
    c = _deb_unit(store, tmp_path, "c", [("./usr/", "d", "", 0o755), ("./usr/bin/", "d", "", 0o755),
                                         ("./usr/bin/tool", "f", "v1\n", 0o755)])
    with store.session():
        make_deb_units(store, [a, b, c], EPOCH, jobs=1)
    for n, units in enumerate(([a, c], [c, a], [a, b], [b, a])):
        tree = tmp_path / f"tree{n}"
        tree.mkdir()
        linker = Linker(tree, EPOCH)
        if b in units:
            with pytest.raises(BuildError, match=r"^(a and b|b and a) both install /usr/bin/tool$"):
                linker.add_exclusive(units, 4)
        else:
            linker.add_exclusive(units, 4)
            assert (tree / "usr/bin/tool").read_bytes() == b"v1\n" and linker.linked == 3  # tool once
            assert linker.owner["usr/bin/tool"] in ("a", "c")


def _fake_unit(store: Store, name: str) -> str:
    key = hashlib.sha256(name.encode()).hexdigest()
    d = store.paths.unit(key) / "root"
    d.mkdir(parents=True)
    (d / "f").write_bytes(b"x" * 1000)
    os.chmod(d / "f", 0o444)
    os.chmod(d, 0o555)
    return key


def _fake_tree(store: Store, name: str, units: list[str]) -> Path:
    d = store.paths.tree(hashlib.sha256(name.encode()).hexdigest())
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"format-version": 1, "kind": "envgen-tree", "units": units}))
    return d


def test_gc_removes_the_units_no_tree_lists(tmp_path):
    store = Store(tmp_path / "store")
    shared, only_b, orphan = (_fake_unit(store, n) for n in ("shared", "only-b", "orphan"))
    _fake_tree(store, "a", [shared])
    tree_b = _fake_tree(store, "b", [shared, only_b])
    os.link(store.paths.unit(only_b) / "root/f", tree_b / "f")  # a tree's hard link: not freed with the unit
    (store.paths.tree("c" * 64)).mkdir()  # no meta.json: not a published tree, keeps nothing
    res = store.gc(dry_run=True)
    assert res["units_removed"] == 1 and res["units_kept"] == 2 and res["freed_bytes"] == 1000
    assert store.paths.unit(orphan).is_dir()
    res = store.gc()
    assert res["units_removed"] == 1 and not store.paths.unit(orphan).exists()
    remove_tree(tree_b)
    res = store.gc()
    assert res["units_removed"] == 1 and res["units_kept"] == 1 and res["freed_bytes"] == 1000
    assert sorted(store.iter_units()) == [shared]
    bad = _fake_tree(store, "bad", [])
    (bad / "meta.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable tree metadata"):
        store.gc()
    assert sorted(store.iter_units()) == [shared]


# --------------------------------------------------------------------------- real builds of the tiny spec


def _scratch_store(tiny, path: Path) -> Path:
    """A store holding the tiny snapshot's objects (hard links) and roots, nothing built."""
    (path / "objects").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(tiny.store / "objects" / "sha256"), str(path / "objects")], check=True)
    shutil.copytree(tiny.store / "roots", path / "roots")
    shutil.copy(tiny.store / "envgen-store.json", path / "envgen-store.json")
    return path


def _build(spec: Path, store: Path, *extra: str) -> dict:
    return json.loads(run_envgen("build", str(spec), "--store", str(store), "--json", *extra, check=True).stdout)


def _units_are_whole(store: Path) -> int:
    """Every unit in *store* is whole: meta.json names it, and its listing is what root/ holds."""
    n = 0
    for d in sorted((store / "units").iterdir()):
        meta = json.loads((d / "meta.json").read_text())
        assert meta["key"] == d.name and meta["kind"] == "envgen-unit"
        assert (d / "listing.txt").read_text().splitlines() == listing(d / "root"), d
        n += 1
    return n


@pytest.fixture(scope="module")
def tiny_old(tiny):
    """The tiny spec with one leaf re-pinned (six 1.17.0 -> 1.16.0), locked and snapshotted into tiny's store."""
    spec = tiny.spec.parent / "tinyold.toml"
    spec.write_text(tiny.spec.read_text().replace('name = "tiny"', 'name = "tinyold"')
                    .replace("six==1.17.0", "six==1.16.0"))
    run_envgen("lock", str(spec), check=True)
    run_envgen("snapshot", str(spec), "--store", str(tiny.store), check=True)
    return spec


@pytest.mark.network
@pytest.mark.slow
def test_a_tree_from_units_is_the_whole_tree_install(tiny, tmp_path):
    """One digest, one listing, one set of mtimes, whether built from units or installed whole."""
    from envgen.builders.embedded import BUILDER

    units_tree = Path(tiny.built["path"])
    assert tiny.built["units"]["built"] + tiny.built["units"]["reused"] == len(
        json.loads((units_tree.parent / "meta.json").read_text())["units"])
    store = Store(_scratch_store(tiny, tmp_path / "store"))
    whole = BUILDER.build(store, tiny.built["snapshot_id"], units=False)
    assert whole.units == {} and not store.paths.units.exists()
    assert whole.digest == tiny.built["tree_digest"]
    assert (units_tree.parent / "listing.txt").read_text() == (whole.rootfs.parent / "listing.txt").read_text()
    assert _mtimes(units_tree) == _mtimes(whole.rootfs)
    # a tree built from units shares its package files with the store's units, read-only, never writable
    # (built afresh here: a `build --force` elsewhere in the suite leaves the session tree its own copies)
    fresh = Path(_build(tiny.spec, _scratch_store(tiny, tmp_path / "fresh"))["path"])
    site = fresh / "opt/env/lib/python3.11/site-packages"
    assert os.stat(site / "six.py").st_nlink >= 2
    assert not any(os.lstat(os.path.join(d, n)).st_mode & 0o222 for d, ds, fs in os.walk(fresh)
                   for n in ds + fs if not os.path.islink(os.path.join(d, n)))


@pytest.mark.network
@pytest.mark.slow
def test_two_wheels_installing_one_path_alike_build_one_tree_from_units_or_whole(tiny, tmp_path):
    """As torch's NVIDIA wheels do: two projects each install nvidia/__init__.py (the same bytes) beside a
    module of their own, so the units step installs them as one group and compiles the shared file once.
    Built from units (each a unit, sharing that file), then again with one unit gone, and installed whole:
    one tree, every .py with its pyc."""
    from envgen.builders.embedded import BUILDER

    for name in ("nva", "nvb"):
        d = tmp_path / name
        (d / "nvidia").mkdir(parents=True)
        (d / "nvidia" / "__init__.py").write_text("")
        (d / "nvidia" / f"{name}.py").write_text(f"NAME = {name!r}\n")
        (d / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
            f'[project]\nname = "{name}"\nversion = "1.0"\ndescription = "shares nvidia/"\n\n'
            '[tool.flit.module]\nname = "nvidia"\n')
    spec = tmp_path / "specs" / "nv.toml"
    spec.parent.mkdir()
    spec.write_text(tiny.spec.read_text().replace('name = "tiny"', 'name = "nv"')
                    .replace('local = ["../hello"]', 'local = ["../nva", "../nvb"]')
                    .replace('command = ["hello"]', 'command = ["python", "-c", "pass"]'))
    store = _scratch_store(tiny, tmp_path / "store")
    run_envgen("lock", str(spec), check=True)
    run_envgen("snapshot", str(spec), "--store", str(store), check=True)
    first = _build(spec, store)
    site = Path(first["path"]) / "opt/env/lib/python3.11/site-packages/nvidia"
    assert sorted(p.name for p in site.iterdir()) == ["__init__.py", "__pycache__", "nva.py", "nvb.py"]
    assert sorted(p.name for p in (site / "__pycache__").iterdir()) == [
        "__init__.cpython-311.pyc", "nva.cpython-311.pyc", "nvb.cpython-311.pyc"]
    made = [m for m in first["units"]["made"] if m.startswith("wheel nv")]
    assert len(made) == 2, first["units"]
    # nvb's unit gone: nva's is placed, nvb is installed and compiled alone, beside it
    nvb = [d for d in (store / "units").iterdir()
           if json.loads((d / "meta.json").read_text())["name"].startswith("nvb-")]
    assert len(nvb) == 1
    remove_tree(nvb[0])
    remove_tree(Path(first["path"]).parent)
    again = _build(spec, store)
    assert again["units"]["made"] == [m for m in made if m.startswith("wheel nvb-")]
    assert again["tree_digest"] == first["tree_digest"]
    nv = Store(_scratch_store(SimpleNamespace(store=store), tmp_path / "whole"))  # its objects, no unit
    whole = BUILDER.build(nv, first["snapshot_id"], units=False)
    assert whole.digest == first["tree_digest"]
    assert not list((store / "tmp").iterdir())


@pytest.mark.network
@pytest.mark.slow
def test_repinning_a_leaf_makes_only_its_unit(tiny, tiny_old, tmp_path):
    store = _scratch_store(tiny, tmp_path / "store")
    first = _build(tiny.spec, store)
    assert first["tree_digest"] == tiny.built["tree_digest"]
    assert first["units"]["reused"] == 0
    old = _build(tiny_old, store)
    assert old["units"]["made"] == ["wheel six-1.16.0-py2.py3-none-any.whl"], old["units"]
    assert old["units"]["built"] == 1 and old["units"]["reused"] == first["units"]["built"] - 1
    assert old["units"]["copied"] == 0 and old["units"]["linked"] > 100
    # the same tree as installing the re-pinned env whole (its own whole-tree compile chunks)
    from envgen.builders.embedded import BUILDER

    whole = BUILDER.build(Store(_scratch_store(tiny, tmp_path / "whole")), old["snapshot_id"], units=False)
    assert whole.digest == old["tree_digest"]
    # --force makes every unit afresh (and proves them): same tree
    forced = _build(tiny_old, store, "--force")
    assert forced["units"]["reused"] == 0 and forced["tree_digest"] == old["tree_digest"]
    assert _units_are_whole(store) == first["units"]["built"] + 1
    assert not list((store / "tmp").iterdir())


@pytest.mark.network
@pytest.mark.slow
def test_gc_keeps_a_shared_unit_while_either_tree_lives(tiny, tiny_old, tmp_path):
    store_dir = _scratch_store(tiny, tmp_path / "store")
    a = _build(tiny.spec, store_dir)
    b = _build(tiny_old, store_dir)
    meta = {k: json.loads((Path(t["path"]).parent / "meta.json").read_text())["units"] for k, t in
            (("a", a), ("b", b))}
    shared, only_a, only_b = (set(meta["a"]) & set(meta["b"]), set(meta["a"]) - set(meta["b"]),
                              set(meta["b"]) - set(meta["a"]))
    assert len(only_a) == 1 and len(only_b) == 1 and len(shared) > 40
    units = store_dir / "units"

    def gc() -> dict:
        return json.loads(run_envgen("gc", "--store", str(store_dir), "--json", check=True).stdout)

    assert gc()["units_removed"] == 0 and {p.name for p in units.iterdir()} == shared | only_a | only_b
    remove_tree(Path(b["path"]).parent)  # drop tree b: its own unit goes, the shared ones stay for a
    res = gc()
    assert res["units_removed"] == 1 and {p.name for p in units.iterdir()} == shared | only_a
    assert digest_of(listing(Path(a["path"]))) == a["tree_digest"]
    assert run_envgen("run", str(tiny.spec), "--store", str(store_dir), "--", "python", "-c",
                      "import six; print(six.__version__)", check=True).stdout.strip() == "1.17.0"
    again = _build(tiny_old, store_dir)  # b again: only its own unit is made anew
    assert again["units"]["built"] == 1 and again["tree_digest"] == b["tree_digest"]
    for t in (a, again):
        remove_tree(Path(t["path"]).parent)
    res = gc()
    assert res["units_kept"] == 0 and res["units_removed"] == len(shared) + 2 and not list(units.iterdir())


@pytest.mark.network
@pytest.mark.slow
def test_racing_and_killed_builds_leave_only_whole_units(tiny, tiny_old, tmp_path):
    store = _scratch_store(tiny, tmp_path / "store")
    # killed half-way: whatever it published is whole, the rest stays in tmp/ and is cleaned
    proc = subprocess.Popen([sys.executable, "-m", "envgen", "build", str(tiny.spec), "--store", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (
            (store / "units").is_dir() and any((store / "units").iterdir())):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the build ended before it could be killed"
    assert not (store / "trees").exists() or not list((store / "trees").iterdir())
    assert _units_are_whole(store) >= 1
    # two builds at once, sharing most units: both trees right, every unit whole, nothing left in tmp/
    procs = [subprocess.Popen([sys.executable, "-m", "envgen", "build", str(s), "--store", str(store), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (tiny.spec, tiny_old)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert json.loads(outs[0][0])["tree_digest"] == tiny.built["tree_digest"]
    old = json.loads(outs[1][0])
    whole = _build(tiny_old, _scratch_store(tiny, tmp_path / "whole"))
    assert old["tree_digest"] == whole["tree_digest"]
    n = _units_are_whole(store)
    assert n == len(set(json.loads((Path(json.loads(outs[0][0])["path"]).parent / "meta.json").read_text())["units"])
                    | set(json.loads((Path(old["path"]).parent / "meta.json").read_text())["units"]))
    run_envgen("gc", "--store", str(store), check=True)  # an exclusive session: tmp/ is cleaned
    assert not list((store / "tmp").iterdir())


def _wheel(path: Path, names: dict[str, str]) -> str:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, text in names.items():
            zf.writestr(name, text)
    return str(path)


@pytest.mark.network
def test_wheels_that_could_install_one_path_are_installed_in_one_group(tiny, tmp_path, monkeypatch):
    """The assembler installs wheels side by side only when they share nothing they could install: the same
    top-level name in site-packages (from the wheel's root or .data/purelib|platlib), a script (a file in
    .data/scripts or an entry point), the top of a data directory, or any of those reached through .data/data
    (the prefix); each group in file-name order."""
    from envgen.builders.assemble import env_scheme, install_groups, load_layout
    from envgen.lock import pylock

    lock = pylock.load(tiny.spec.parent / "pylock.tiny.toml")
    installer = next(p for p in lock.build_tools if p.name == "installer")
    monkeypatch.syspath_prepend(str(tiny.store / "objects" / "sha256" / installer.wheels[0].sha256))
    w = {
        "a": {"nvidia/__init__.py": "", "nvidia/a/x.py": "", "a-1.dist-info/RECORD": ""},
        "b": {"nvidia/__init__.py": "", "nvidia/b/y.py": "", "b-1.dist-info/RECORD": ""},
        "c": {"c/__init__.py": "", "c-1.dist-info/entry_points.txt": "[console_scripts]\ntool = c:main\n"},
        "d": {"d/__init__.py": "", "d-1.data/scripts/tool": "#!python\n"},
        "e": {"e/__init__.py": "", "e-1.dist-info/entry_points.txt": "[pytest11]\ntool = e.plugin\n"},
        "f": {"f-1.data/platlib/nvidia/f/z.py": "", "f-1.dist-info/RECORD": ""},
        "g": {"g-1.data/data/share/g.txt": ""},
        "h": {"h-1.data/data/share/h.txt": "", "h-1.data/headers/h.h": ""},
        "i": {"i-1.data/data/bin/tool": ""},  # the prefix's bin: c's and d's tool
        "j": {"j-1.data/data/lib/python3.11/site-packages/e/extra.py": ""},  # e's package
        "k": {"k-1.data/headers/h.h": ""},
    }
    paths = [_wheel(tmp_path / f"{n}-1-py3-none-any.whl", names) for n, names in sorted(w.items(), reverse=True)]
    layout = load_layout(str(Path(__file__).resolve().parent.parent / "envgen" / "layout.py"))
    groups = install_groups(paths, env_scheme(layout, "3.11"))
    named = sorted([Path(p).name[0] for p in g] for g in groups)
    assert named == [["a", "b", "f"], ["c", "d", "i"], ["e", "j"], ["g", "h", "k"]]  # e's entry point: no script
    assert sorted(p for g in groups for p in g) == sorted(paths)


@pytest.mark.network
@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing_staged(tiny, tmp_path):
    """A store on a filesystem that fills up during the build (a quota on a cluster): one line that says so
    and what to do, exit status 2, no traceback, and nothing left in the store's staging; every unit
    published is whole. A small tmpfs in a user and mount namespace of its own, at three sizes, so that
    the disk fills at different steps (the .debs' units, and later ones)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no unprivileged user and mount namespaces here")
    script = (
        'set -e; mount -t tmpfs -o size="$1" tmpfs "$2"; mkdir "$2/store"; '
        'cp -a "$3/objects" "$3/roots" "$3/envgen-store.json" "$2/store/"; set +e; '
        '"$4" -m envgen build "$5" --store "$2/store" --json > "$6"; echo "rc=$?"; '
        'ls -A "$2/store/tmp"; '
        'for u in "$2"/store/units/*/; do [ -e "$u" ] && ! [ -f "$u/meta.json" ] && echo "torn $u"; done; true'
    )
    for size in ("45m", "120m", "175m"):  # the tiny build needs ~185 MB (its objects 22 MB)
        doc = tmp_path / f"{size}.json"
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", size, str(mnt), str(tiny.store),
                               sys.executable, str(tiny.spec), str(doc)], capture_output=True, text=True, cwd=REPO)
        out = proc.stdout.split()
        assert "rc=2" in out, (size, proc.stdout, proc.stderr[-2000:])
        assert out[-1] == "rc=2", f"{size}: left behind {out[out.index('rc=2') + 1:]}"
        errors = [line for line in proc.stderr.splitlines() if line.startswith("envgen: error:")]
        assert len(errors) == 1 and "envgen gc" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
        assert json.loads(doc.read_text())["error"]["type"] == "NoSpace", (size, errors[0])
    # fetching into a full store is the same error, at once, not "cannot fetch" with a network hint
    fetch = (
        'set -e; mount -t tmpfs -o size=10m tmpfs "$1"; set +e; '
        '"$2" -m envgen snapshot "$3" --store "$1/store" --json > "$4"; echo "rc=$?"; ls -A "$1/store/tmp"'
    )
    doc = tmp_path / "snapshot.json"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", fetch, "sh", str(mnt), sys.executable, str(tiny.spec),
                           str(doc)], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.split() == ["rc=2"], (proc.stdout, proc.stderr[-2000:])
    assert json.loads(doc.read_text())["error"]["type"] == "NoSpace", proc.stderr[-2000:]


def test_batches_of_groups_do_not_depend_on_which_group_is_done_first():
    """The units step compiles each group of wheels as it is in, in batches of whole groups in group
    order of at least N files: whichever order the install threads finish the groups in, the batches
    (what each compileall chunk holds) are the same, and every file is in exactly one."""
    import itertools

    from envgen.builders.assemble import Batches

    groups = [[f"g{i}/f{j}.py" for j in range(n)] for i, n in enumerate([5, 1, 0, 3, 2, 4, 1])]
    seen = set()
    for order in itertools.permutations(range(len(groups))):
        batches: list[list[str]] = []
        b = Batches(4, batches.append)
        for i in order:
            b.add(i, groups[i])
        b.close()
        seen.add(tuple(map(tuple, batches)))
    assert len(seen) == 1
    (only,) = seen
    assert [len(x) for x in only] == [5, 4, 6, 1]  # 5 | 1+0+3 | 2+4 | the last one's leftover
    assert sorted(f for x in only for f in x) == sorted(f for g in groups for f in g)
    # a path two wheels of a group both install (the same bytes) is compiled once, not by two chunks at once
    twice: list[list[str]] = []
    b = Batches(1, twice.append)
    b.add(0, ["nvidia/__init__.py", "nvidia/a.py", "nvidia/__init__.py"])
    b.close()
    assert twice == [["nvidia/__init__.py", "nvidia/a.py"]]


def test_the_compile_server_writes_the_pycs_a_fresh_compileall_writes(tmp_path, monkeypatch):
    """Each chunk is compiled in a process forked from one compile server, not in a fresh interpreter: its
    pycs are the bytes ``python -m compileall`` writes, even for a module whose pyc depends on the
    compiling process (marshal records whether "[" is interned, and json's C encoder interns it: the
    control below shows that this module can tell); a file that does not compile is no failure, and each
    chunk is said done with its files."""
    from envgen import layout
    from envgen.builders import assemble

    src = tmp_path / "src"
    src.mkdir()
    (src / "brackets.py").write_text('def wrap(out, inner):\n    out.append("[")\n    out.append(f"({inner})]")\n')
    (src / "py2.py").write_text('print "not Python 3"\n')
    for i in range(30):
        (src / f"m{i:02}.py").write_text(f"VALUE = {i}\n\ndef f(x):\n    return x in {{'a{i}', 'b'}}\n")
    files = sorted(str(p) for p in src.glob("*.py"))
    plan = {"python_cmd": [sys.executable], "epoch": 0}
    env = assemble.build_environ(plan)

    def pycs() -> dict[str, bytes]:
        out = {p.name: p.read_bytes() for p in sorted((src / "__pycache__").glob("*.pyc"))}
        shutil.rmtree(src / "__pycache__")
        return out

    listing = tmp_path / "all.txt"
    listing.write_text("".join(f + "\n" for f in files))
    compileall = ["-B", "-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash", "-i", str(listing)]
    subprocess.run([sys.executable, *compileall], env=env, capture_output=True, check=False)
    fresh = pycs()
    subprocess.run([sys.executable, "-B", "-c", "import json, runpy, sys; json.dumps([1]); sys.argv[0] = 'x'; "
                    "runpy.run_module('compileall', run_name='__main__')", *compileall[3:]], env=env,
                   capture_output=True, check=False)
    other = pycs()
    tag = sys.implementation.cache_tag
    assert len(fresh) == 31 and f"py2.{tag}.pyc" not in fresh
    assert [k for k in fresh if fresh[k] != other[k]] == [f"brackets.{tag}.pyc"]  # the control can tell

    monkeypatch.setattr(assemble, "WORK", str(tmp_path / "work"))
    monkeypatch.setattr(layout, "COMPILE_CHUNK_FILES", 4)  # 8 chunks of these 32 files
    said: list[list[str]] = []
    with assemble.Compiler(plan, layout, done=said.append) as compiler:
        compiler.submit(files)
    assert pycs() == fresh
    assert len(said) == 8 and sorted(f for chunk in said for f in chunk) == files
    assert not (tmp_path / "work" / "compile").exists()


@pytest.mark.network
@pytest.mark.slow
def test_a_unit_changed_outside_envgen_is_refused_with_the_way_out(tiny, tmp_path):
    """A tree's files are its units' files: a chmod on the tree changes a unit. The next build that would
    share that unit refuses, in one line that says how to recover; `envgen store verify` names the damaged
    unit, `--repair` removes it (and only it), and the build then makes that one unit again: the same tree."""
    store = _scratch_store(tiny, tmp_path / "store")
    first = _build(tiny.spec, store)
    six = Path(first["path"]) / "opt/env/lib/python3.11/site-packages/six.py"
    os.chmod(six, 0o644)  # what `chmod -R u+w` on a tree does to the unit it shares six.py with
    remove_tree(Path(first["path"]).parent)
    proc = run_envgen("build", str(tiny.spec), "--store", str(store))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "six.py: a file shared with an install unit has mode 0644" in proc.stderr
    assert "envgen store verify --repair" in proc.stderr
    check = run_envgen("store", "verify", "--store", str(store), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 1 and report["units_checked"] == first["units"]["built"]
    [damaged] = report["damaged_units"]
    assert "six.py" in damaged["why"] and (store / "units" / damaged["key"]).is_dir()
    run_envgen("store", "verify", "--store", str(store), "--repair", check=False)
    assert not (store / "units" / damaged["key"]).exists()
    assert json.loads(run_envgen("store", "verify", "--store", str(store), "--json", check=True).stdout)["ok"]
    again = _build(tiny.spec, store)
    assert again["tree_digest"] == first["tree_digest"]
    assert again["units"]["made"] == ["wheel six-1.17.0-py2.py3-none-any.whl"], again["units"]
