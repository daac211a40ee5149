"""Software Heritage ids of a bundle's sources (issue 17), checked against swh.model's own computation."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import tarfile
import types
import zipfile

import pytest

from envgen.archive import read_manifest, write_bundle
from envgen.cli import main
from envgen.lock import pylock
from envgen.snapshot import snapshot
from envgen.snapshot.store import Store
from envgen.swhid import archive_swhids


def _tree(root, files: dict[str, bytes | str | None], modes: dict[str, int] | None = None) -> None:
    """Files under *root*: bytes are contents, a str is a symlink's target, None an empty directory."""
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            p.mkdir()
        elif isinstance(data, str):
            os.symlink(data, p)
        else:
            p.write_bytes(data)
    for rel, mode in (modes or {}).items():
        os.chmod(root / rel, mode)


def _targz(src, top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        tf.add(src / top, top)
    return buf.getvalue()


@pytest.fixture
def sources(tmp_path, file_server):
    """A lock whose snapshot holds a local project, two sdists (setuptools, hatchling) and a zip build sdist."""
    made = tmp_path / "made"
    # setuptools: setup.py, an executable script, a symlink, an empty directory
    _tree(made, {"alpha-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n",
                 "alpha-1.0/setup.py": b"from setuptools import setup\nsetup()\n",
                 "alpha-1.0/setup.cfg": b"[metadata]\nname = alpha\n",
                 "alpha-1.0/alpha/__init__.py": b"A = 1\n",
                 "alpha-1.0/bin/alpha-run": b"#!/bin/sh\nexec python -m alpha\n",
                 "alpha-1.0/alpha/data/empty": None,
                 "alpha-1.0/LICENSE.txt": "alpha/__init__.py"},
          {"alpha-1.0/bin/alpha-run": 0o744})
    # hatchling: pyproject.toml only, src layout
    _tree(made, {"beta-2.0/PKG-INFO": b"Metadata-Version: 2.3\nName: beta\nVersion: 2.0\n",
                 "beta-2.0/pyproject.toml": b'[build-system]\nrequires = ["hatchling"]\n'
                                            b'build-backend = "hatchling.build"\n',
                 "beta-2.0/src/beta/__init__.py": b"B = 2\n",
                 "beta-2.0/src/beta/py.typed": b"",
                 "beta-2.0/.gitignore": b"*.pyc\n"})
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:  # an old-style .zip sdist, with Unix modes
        for name, data, mode in (("gamma-0.3/setup.py", b"import setuptools\n", 0o644),
                                 ("gamma-0.3/tool.sh", b"#!/bin/sh\n", 0o755),
                                 ("gamma-0.3/gamma/__init__.py", b"", 0o644)):
            info = zipfile.ZipInfo(name, (2025, 5, 8, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    root = tmp_path / "proj"
    app = root / "app"
    _tree(app, {"pyproject.toml": b'[project]\nname = "demo-app"\nversion = "0.1"\n',
                "demo_app/__init__.py": b"VALUE = 1\n", "demo_app/cli.py": b"print('hi')\n",
                "run.sh": b"#!/bin/sh\necho hi\n"}, {"run.sh": 0o775})
    (root / "specs").mkdir()
    date = dt.datetime(2025, 5, 8, tzinfo=dt.UTC)
    archives = {"alpha-1.0.tar.gz": _targz(made, "alpha-1.0"), "beta-2.0.tar.gz": _targz(made, "beta-2.0"),
                "gamma-0.3.zip": zbuf.getvalue()}

    def art(fn):
        data = archives[fn]
        return pylock.Artifact("sdist", fn, file_server.add(f"/files/{fn}", data), hashlib.sha256(data).hexdigest(),
                               len(data), date)

    spec_text = 'name = "demo"\nsnapshot-date = 2025-05-08T00:00:00Z\npython = "3.11"\n'
    (root / "specs" / "demo.toml").write_text(spec_text)
    lock = pylock.Lock(
        name="demo", spec="demo.toml", spec_sha256=hashlib.sha256(spec_text.encode()).hexdigest(),
        snapshot_date=date, python="3.11", platforms=["linux-x86_64"], envgen_version="0.1.0", uv_version="0.13.0",
        index="https://pypi.org/simple", roots=["alpha", "beta"],
        packages=[pylock.PyPackage("alpha", "1.0", sdist=art("alpha-1.0.tar.gz"), index="https://pypi.org/simple"),
                  pylock.PyPackage("beta", "2.0", sdist=art("beta-2.0.tar.gz"), index="https://pypi.org/simple"),
                  pylock.PyPackage("demo-app", "0.1", directory="../app")],
        build_tools=[pylock.PyPackage("gamma", "0.3", sdist=art("gamma-0.3.zip"))],
        debian=pylock.Debian("debian/bookworm", "amd64", [], [], [], []), environments=[], requires_python="==3.11.*",
    )
    lock_path = root / "specs" / "pylock.demo.toml"
    lock_path.write_text(pylock.dumps(lock))
    store = Store(tmp_path / "store")
    sid = snapshot(store, pylock.load(lock_path)).id
    return types.SimpleNamespace(store=store, id=sid, app=app, archives=archives, lock_path=lock_path,
                                 made=made, tmp=tmp_path)


def _swh_dir(path) -> str:
    from swh.model.from_disk import Directory

    return str(Directory.from_disk(path=os.fsencode(path), max_content_length=None).swhid())


def _swh_cnt(data: bytes) -> str:
    from swh.model.model import Content

    return str(Content.from_data(data).swhid())


def test_bundle_swhids_match_swh_model(sources, tmp_path, capsys):
    bundle = tmp_path / "b.tar"
    res = write_bundle(sources.store, sources.id, bundle, "none")
    manifest = read_manifest(bundle)
    assert manifest["sources"] == res["sources"]
    by_name = {s["name"]: s for s in manifest["sources"]}
    assert {n: s["role"] for n, s in by_name.items()} == {
        "demo-app": "local-source", "alpha-1.0.tar.gz": "sdist", "beta-2.0.tar.gz": "sdist",
        "gamma-0.3.zip": "build-sdist"}
    assert manifest["sources"][0]["name"] == "demo-app"  # local projects first

    # the local project: its directory as it is on disk (every file is packed)
    assert by_name["demo-app"]["directory"] == _swh_dir(sources.app)
    # the sdists: the tree each unpacks to, and the archive file itself
    for fn, data in sources.archives.items():
        out = tmp_path / "unpacked" / fn
        out.mkdir(parents=True)
        if fn.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    zf.extract(info, out)
                    os.chmod(out / info.filename, (info.external_attr >> 16) & 0o777)
        else:
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                tf.extractall(out, filter="tar")
        assert by_name[fn]["directory"] == _swh_dir(out), fn
        assert by_name[fn]["content"] == _swh_cnt(data), fn
        assert by_name[fn]["object"] == hashlib.sha256(data).hexdigest()
    # a change of one execute bit changes the tree's id, as it does for Software Heritage
    os.chmod(sources.made / "alpha-1.0" / "bin" / "alpha-run", 0o644)
    data = _targz(sources.made, "alpha-1.0")
    assert archive_swhids(io.BytesIO(data), len(data))["directory"] != by_name["alpha-1.0.tar.gz"]["directory"]

    # CITATION.cff cites each by its swh:1:dir:
    with tarfile.open(bundle) as tf:
        cff = tf.extractfile("CITATION.cff").read().decode()
    for s in manifest["sources"]:
        assert f"  - type: swh\n    value: \"{s['directory']}\"\n" in cff

    # --swh-list, from the bundle and from the snapshot, human and --json
    assert main(["archive", str(bundle), "--swh-list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sources"] == manifest["sources"]
    assert main(["archive", str(sources.lock_path), "--store", str(sources.store.root), "--swh-list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{s['directory']}  {s['role']}  {s['name']}" for s in manifest["sources"]]


def test_archives_that_do_not_unpack_have_only_a_content_id():
    blob = b"not an archive at all" * 10
    assert archive_swhids(io.BytesIO(blob), len(blob)) == {"content": _swh_cnt(blob)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:  # a member that would unpack outside the directory
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    data = buf.getvalue()
    assert archive_swhids(io.BytesIO(data), len(data)) == {"content": _swh_cnt(data)}


def test_archive_needs_an_output_unless_listing(sources, capsys):
    assert main(["archive", str(sources.lock_path), "--store", str(sources.store.root)]) == 2
    assert "-o BUNDLE" in capsys.readouterr().err


def test_verify_sh_reads_past_the_sources(sources, tmp_path):
    """VERIFY.sh reads the manifest line by line: the sources' entries must not pass for members."""
    import subprocess

    from helpers import REPO

    bundle = tmp_path / "b.tar"
    write_bundle(sources.store, sources.id, bundle, "none")
    proc = subprocess.run(["sh", str(REPO / "envgen" / "selfhost" / "VERIFY.sh"), str(bundle)],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    # every member checked out (names, set, sha256); it stops only at the envgen runtime this bundle lacks
    assert proc.returncode != 0 and "selfhost/busybox" in proc.stderr, proc.stderr
    assert "refused" not in proc.stderr, proc.stderr
