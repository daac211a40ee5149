"""The snapshot stage: a lock's artifacts in a content-addressed store, named by one id.

Public API (other stages import these names only):

* :class:`Store`, :func:`open_store`, :func:`is_sha256`, :class:`HashMismatch` — the store;
* :func:`snapshot` — fetch what the store lacks, pack local sources, write the root;
* :func:`make_plan`, :func:`local_sources`, :func:`load_root`, :func:`parse_manifest` — reading;
* :mod:`.srcpack` — deterministic tars of local source trees.
"""

from __future__ import annotations

from . import srcpack
from .fetch import (
                    FetchError,
                    Plan,
                    SnapshotResult,
                    fetch_object,
                    load_root,
                    local_sources,
                    make_plan,
                    parse_manifest,
                    snapshot,
)
from .store import HashMismatch, Store, is_sha256, open_store

__all__ = [
    "FetchError", "HashMismatch", "Plan", "SnapshotResult", "Store", "fetch_object", "is_sha256", "load_root",
    "local_sources", "make_plan", "open_store", "parse_manifest", "snapshot", "srcpack",
]
