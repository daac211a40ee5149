"""Unpacking .debs (envgen/builders/debs.py): members, links, modes, and hostile names."""

from __future__ import annotations

import io
import lzma
import os
import tarfile

import pytest

from envgen.builders import debs
from envgen.errors import EnvgenError


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def make_deb(entries: list[tuple[str, str, bytes | str, int]]) -> bytes:
    """A .deb whose data.tar.xz holds *entries*: (name, kind 'f'|'d'|'l'|'h', content or link target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, content, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(content)
                tf.addfile(ti)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(content)
                tf.addfile(ti)
            else:
                data = content if isinstance(content, bytes) else content.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.xz", lzma.compress(b"")),
                ("data.tar.xz", lzma.compress(buf.getvalue()))])


def unpack(tmp_path, entries, label="test.deb"):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return root, debs.extract_deb(io.BytesIO(make_deb(entries)), root, label)


def test_member_path_strips_only_a_leading_dot_slash():
    assert debs.member_path("./usr/bin/x") == "usr/bin/x"
    assert debs.member_path("./.hidden") == ".hidden"  # lstrip("./") would have made this "hidden"
    assert debs.member_path("../../x") == "../../x"
    assert debs.member_path("./") == "" and debs.member_path(".") == ""


def test_files_dirs_links_and_modes(tmp_path):
    root, written = unpack(tmp_path, [
        ("./", "d", "", 0o755),
        ("./usr", "d", "", 0o755),
        ("./usr/bin", "d", "", 0o755),
        ("./usr/bin/tool", "f", "#!/bin/sh\n", 0o4755),
        ("./usr/share/.hidden", "f", "dot file", 0o644),
        ("./.hidden", "f", "top dot file", 0o644),
        ("./usr/bin/alias", "l", "tool", 0o777),
        ("./usr/bin/copy", "h", "./usr/bin/tool", 0o755),
    ])
    assert (root / "usr/share/.hidden").read_text() == "dot file"
    assert (root / ".hidden").read_text() == "top dot file" and not (root / "hidden").exists()
    tool = root / "usr/bin/tool"
    assert os.stat(tool).st_mode & 0o7777 == 0o755  # no setuid
    assert os.readlink(root / "usr/bin/alias") == "tool"
    assert os.stat(root / "usr/bin/copy").st_ino == os.stat(tool).st_ino
    assert "usr/share/.hidden" in written and "usr/bin/tool" in written


@pytest.mark.parametrize("name", ["../../x", "./../etc/passwd", "usr/../../x"])
def test_a_member_that_leaves_the_root_is_refused(tmp_path, name):
    with pytest.raises(EnvgenError, match="leaves the root"):
        unpack(tmp_path, [(name, "f", "evil", 0o644)])
    assert not (tmp_path / "x").exists() and not (tmp_path / "etc").exists()


def test_a_hardlink_out_of_the_root_is_refused(tmp_path):
    with pytest.raises(EnvgenError, match="leaves the root"):
        unpack(tmp_path, [("./a", "h", "../../etc/passwd", 0o644)])


def test_not_a_deb(tmp_path):
    with pytest.raises(EnvgenError, match="not a Debian package"):
        debs.extract_deb(io.BytesIO(b"garbage"), tmp_path, "junk.deb")
    with pytest.raises(EnvgenError, match="no data.tar"):
        debs.extract_deb(io.BytesIO(_ar([("debian-binary", b"2.0\n")])), tmp_path, "empty.deb")


def test_one_placer_for_a_tree_resolves_links_and_forgets_a_replaced_one(tmp_path):
    """A tree's placer remembers the parents it made; merged-/usr links are followed inside the root, and a
    link replaced by another (a later .deb's) sends the next member where the new link points."""
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib2").mkdir()
    os.symlink("usr/lib", root / "lib")  # merged /usr
    place = debs.Placer(root)
    assert place.directory("lib") is None  # a directory member where the root has a link: the link is kept
    (place.prepare("lib/a.so", "one.deb")).write_text("a")
    assert (root / "usr/lib/a.so").read_text() == "a" and os.path.islink(root / "lib")
    os.symlink("usr/lib2", place.prepare("lib", "two.deb"))  # the link itself replaced
    place.prepare("lib/b.so", "three.deb").write_text("b")
    assert (root / "usr/lib2/b.so").read_text() == "b" and not (root / "usr/lib/b.so").exists()
    place.prepare("deep/er/c", "four.deb").write_text("c")
    assert place.prepare("deep/er/d", "four.deb").parent == root / "deep/er"
    with pytest.raises(EnvgenError, match="five.deb: deep/er would replace a directory"):
        place.prepare("deep/er", "five.deb")
    os.symlink("/usr/lib", root / "abs")  # an absolute link resolves inside the root, not on the host
    place.prepare("abs/x", "six.deb").write_text("x")
    assert (root / "usr/lib/x").read_text() == "x"


def test_an_absolute_link_in_the_root_never_leads_outside(tmp_path):
    """A .deb's absolute link (/lib64 -> /usr/lib64 style) is followed inside the root: members under it, and
    directories, land in the root, never on the host."""
    outside = tmp_path / "host"
    outside.mkdir()
    root, _ = unpack(tmp_path, [
        ("./usr/lib64/", "d", "", 0o755),
        ("./lib64", "l", "/usr/lib64", 0o777),
        ("./host", "l", str(outside), 0o777),
        ("./lib64/ld.so", "f", "loader", 0o755),
        ("./host/sub/", "d", "", 0o755),
        ("./host/sub/f", "f", "inside", 0o644),
    ])
    assert (root / "usr/lib64/ld.so").read_text() == "loader"
    assert (root / str(outside).lstrip("/") / "sub/f").read_text() == "inside"
    assert list(outside.iterdir()) == []


def test_a_cycle_of_links_is_refused(tmp_path):
    with pytest.raises(EnvgenError, match="cycle.deb: too many levels of symbolic links"):
        unpack(tmp_path, [("./a", "l", "b", 0o777), ("./b", "l", "a", 0o777), ("./a/x", "f", "x", 0o644)], "cycle.deb")
