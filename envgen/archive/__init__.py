"""The archive stage: one deterministic bundle file per snapshot, and its hostile-proof restore.

A bundle is a tar (zstd-, gzip- or xz-compressed, or plain) whose members are,
in this order::

    envgen-bundle.json        the bundle manifest (always first)
    CITATION.cff              a citation stub
    README.md                 how to rebuild offline
    envgen-source.tar         the envgen that made it: envgen/ + pyproject.toml + requirements/dev.txt
    objects/sha256/<hex>      every store object of the snapshot
    snapshot.json             the snapshot manifest (its sha256 is the snapshot id)

(after the manifest, members are sorted by path).  Every entry is a regular
file, mode 0644, uid/gid 0 with empty names, mtime = the snapshot date.  The
bundle manifest::

    {"format-version": 1, "kind": "envgen-bundle", "snapshot-id": "...", "name": "abide",
     "snapshot-date": "...", "envgen-version": "0.1.0",
     "members": [{"path": "...", "role": "...", "sha256": "...", "size": N}, ...],
     "sources": [{"object": "...", "role": "sdist", "name": "...", "content": "swh:1:cnt:...",
                  "directory": "swh:1:dir:..."}, ...]}

lists every other member; ``sources`` the Software Heritage ids of the
snapshot's sources (:mod:`envgen.swhid`).  Compression is single-threaded with fixed settings
and no timestamps or file names, so archiving twice gives identical bytes.

Modules: :mod:`.members` (member names, compressions, :func:`is_bundle`),
:mod:`.write` (:func:`write_bundle`) and :mod:`.restore` (:func:`restore_bundle`).
"""

from __future__ import annotations

from .members import (
                      COMPRESSIONS,
                      DEFAULT_COMPRESSION,
                      EVIDENCE_ROLES,
                      KIND,
                      MANIFEST,
                      SUFFIX,
                      detect_compression,
                      is_bundle,
                      open_decompressed,
                      read_manifest,
)
from .restore import restore_bundle
from .write import write_bundle

__all__ = ["COMPRESSIONS", "DEFAULT_COMPRESSION", "EVIDENCE_ROLES", "KIND", "MANIFEST", "SUFFIX", "detect_compression",
           "is_bundle", "open_decompressed", "read_manifest", "restore_bundle", "write_bundle"]
