"""The snapshot stage: a lock's artifacts in a content-addressed store, named by one id.

Public API (other stages import these names only):

* :class:`Store`, :func:`open_store`, :func:`is_sha256`, :class:`HashMismatch` — the store;
* :func:`snapshot` — fetch what the store lacks, pack local sources, write the root;
* :func:`make_plan`, :func:`local_sources`, :func:`load_root`, :func:`parse_manifest` — reading;
* :mod:`.srcpack` — deterministic tars of local source trees.

The names are loaded on first use (PEP 562): ``envgen run`` needs the store but
not the fetcher, whose imports (the lock model, msgspec, packaging) would
otherwise be paid by every run's start-up.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: `envgen run` does without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

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

# name -> the submodule that defines it
_HOME = {
    "FetchError": "fetch", "Plan": "fetch", "SnapshotResult": "fetch", "fetch_object": "fetch", "load_root": "fetch",
    "local_sources": "fetch", "make_plan": "fetch", "parse_manifest": "fetch", "snapshot": "fetch",
    "HashMismatch": "store", "Store": "store", "is_sha256": "store", "open_store": "store",
}


def __getattr__(name: str) -> Any:
    if name == "srcpack":
        return importlib.import_module(f"{__name__}.srcpack")
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
