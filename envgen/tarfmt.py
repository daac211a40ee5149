"""The one deterministic tar entry: every tar envgen writes (bundles, source packs, image layers) uses it.

Owner 0:0 with empty names, a fixed mtime (from the snapshot date), an
explicit mode, no device numbers: the bytes depend only on what is archived.
"""

from __future__ import annotations

import tarfile


def entry(name: str, *, mtime: int, size: int = 0, mode: int = 0o644, type: bytes = tarfile.REGTYPE,
          linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = size if type == tarfile.REGTYPE else 0
    ti.mode = mode
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.linkname = linkname
    ti.devmajor = ti.devminor = 0
    return ti
