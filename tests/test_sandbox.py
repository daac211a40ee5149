"""The one bwrap command line (envgen/sandbox.py), for builds and for runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envgen import sandbox
from envgen.errors import EnvgenError
from envgen.layout import DEFAULT_PATH
from envgen.sandbox import Bind, Sandbox


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    monkeypatch.setattr(sandbox, "netns_available", lambda: True)
    root = tmp_path / "rootfs"
    for d in ("usr", "etc", "opt", "proc", "dev", "tmp"):
        (root / d).mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    return root


def pairs(argv, flag):
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_run_sees_a_read_only_tree_under_a_tmpfs_root(tree, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    argv = Sandbox(root=tree, binds=[Bind(data, "/data"), Bind(tmp_path, "/out", True)],
                   env={"X": "1"}, cwd="/work").argv(["python", "-c", "1"])
    assert argv[:3] == ["/usr/bin/bwrap", "--die-with-parent", "--unshare-all"]
    assert "--share-net" not in argv
    assert argv[argv.index("--tmpfs")+1] == "/"
    ro = pairs(argv, "--ro-bind")
    assert (str(tree / "usr"), "/usr") in ro and (str(tree / "etc"), "/etc") in ro and (str(data), "/data") in ro
    assert not any(dst in ("/proc", "/dev", "/tmp") for _, dst in ro)  # fresh ones instead
    assert ("usr/lib", "/lib") in pairs(argv, "--symlink")
    assert (str(tmp_path), "/out") in pairs(argv, "--bind")
    # the user's binds come before / is made read-only again
    assert argv.index("--remount-ro") > max(i for i, a in enumerate(argv) if a in ("--bind", "--ro-bind"))
    env = dict(pairs(argv, "--setenv"))
    assert env["PATH"] == DEFAULT_PATH and env["X"] == "1" and env["LANG"] == "C.UTF-8" and env["TZ"] == "UTC"
    assert "--clearenv" in argv and argv.index("--clearenv") < argv.index("--setenv")
    assert argv[argv.index("--chdir") + 1] == "/work"
    assert argv[-4:] == ["--", "python", "-c", "1"]


def test_build_has_the_tree_writable_as_root(tree):
    argv = Sandbox(root=tree, writable_root=True).argv(["true"])
    assert (str(tree), "/") in pairs(argv, "--bind")
    assert "--remount-ro" not in argv and "--tmpfs" in argv  # only /tmp


def test_network_only_when_asked(tree):
    argv = Sandbox(root=tree, network=True).argv(["true"])
    assert "--share-net" in argv


def test_no_netns_means_no_run_without_network(tree, monkeypatch):
    monkeypatch.setattr(sandbox, "netns_available", lambda: False)
    with pytest.raises(EnvgenError, match="network cannot be cut"):
        Sandbox(root=tree).argv(["true"])


def test_bind_parsing(tmp_path):
    b = Bind.parse(f"{tmp_path}:/data:ro")
    assert b.src == Path(tmp_path).resolve() and b.dst == "/data" and not b.writable
    assert Bind.parse(f"{tmp_path}:/out/").dst == "/out" and Bind.parse(f"{tmp_path}:/out").writable
    cases = ((f"{tmp_path}:data", "absolute"), (f"{tmp_path}/nope:/d", "does not exist"), ("a:b:c:d", "expected"))
    for bad, why in cases:
        with pytest.raises(EnvgenError, match=why):
            Bind.parse(bad)
